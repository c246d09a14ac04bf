import { eventsPluginType, runtimePluginId, runtimePluginType } from "./ids.ts";
import { invalidArgument } from "../base/errors.ts";
import { TaskManager } from "../core/runtime/mod.ts";
import type { PluginDef } from "./registry.ts";

/**
 * containerd's runtime v2 task manager. Config (`[plugins."io.containerd.runtime.v2.task"]`):
 * `shim_binaries = { "io.containerd.runc.v2" = "/usr/bin/containerd-shim-runc-v2" }` picks the shim
 * binary of a runtime (a Berth key); `shim_start_timeout_ms` bounds `shim start` (default 5000).
 * Reattaches to the shims of running tasks at start-up.
 */
export const runtimePlugin: PluginDef<TaskManager> = {
  type: runtimePluginType,
  id: runtimePluginId,
  requires: [eventsPluginType],
  configKeys: ["shim_binaries", "shim_start_timeout_ms"],
  async init(ic) {
    const bins = ic.config["shim_binaries"] ?? {};
    if (typeof bins !== "object" || bins === null || Object.values(bins).some((v) => typeof v !== "string")) {
      throw invalidArgument(`Invalid shim_binaries ${JSON.stringify(bins)}: use a table of runtime = "path"`);
    }
    const timeout = ic.config["shim_start_timeout_ms"];
    const manager = new TaskManager({
      root: ic.root,
      state: ic.state,
      env: { address: ic.address, ttrpcAddress: `${ic.address}.ttrpc` },
      events: ic.events,
      log: ic.log,
      shimBinaries: bins as Record<string, string>,
      startTimeoutMs: typeof timeout === "number" ? timeout : undefined,
    });
    await manager.restore();
    return manager;
  },
  close: (m) => m.close(),
};
