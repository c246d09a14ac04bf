import { eventsPluginType, runtimePluginId, runtimePluginType } from "./ids.ts";
import { invalidArgument } from "../base/errors.ts";
import { TaskManager } from "../core/runtime/mod.ts";
import { SpareShims } from "../core/runtime/spare_shim.ts";
import { hasShimSocket } from "../core/runtime/shim_group.ts";
import type { EventBus } from "../core/events/mod.ts";
import type { PluginDef } from "./registry.ts";

/**
 * containerd's runtime v2 task manager. Config (`[plugins."io.containerd.runtime.v2.task"]`):
 * `shim_binaries = { "io.containerd.runc.v2" = "/usr/bin/containerd-shim-runc-v2" }` picks the shim
 * binary of a runtime (a Berth key); `shim_start_timeout_ms` bounds `shim start` (default 5000);
 * `spare_shim_idle_ms` is how long a spare shim started ahead of a namespace's first container waits
 * to be used (default 10000; 0 starts none). Reattaches to the shims of running tasks at start-up.
 */
const DEFAULT_SPARE_IDLE_MS = 10_000;

export const runtimePlugin: PluginDef<TaskManager> = {
  type: runtimePluginType,
  id: runtimePluginId,
  requires: [eventsPluginType],
  configKeys: ["shim_binaries", "shim_start_timeout_ms", "spare_shim_idle_ms"],
  async init(ic) {
    const bins = ic.config["shim_binaries"] ?? {};
    if (typeof bins !== "object" || bins === null || Object.values(bins).some((v) => typeof v !== "string")) {
      throw invalidArgument(`Invalid shim_binaries ${JSON.stringify(bins)}: use a table of runtime = "path"`);
    }
    const timeout = ic.config["shim_start_timeout_ms"];
    const spareMs = ic.config["spare_shim_idle_ms"] ?? DEFAULT_SPARE_IDLE_MS;
    if (typeof spareMs !== "number" || !(spareMs >= 0)) {
      throw invalidArgument(
        `Invalid spare_shim_idle_ms ${JSON.stringify(spareMs)}: use milliseconds, 0 for no spare shim`,
      );
    }
    const env = { address: ic.address, ttrpcAddress: `${ic.address}.ttrpc` };
    const spares = spareMs > 0
      ? new SpareShims({ ...env, debug: false, idleMs: spareMs, log: ic.log })
      : undefined;
    const manager = new TaskManager({
      root: ic.root,
      state: ic.state,
      env,
      spares,
      events: ic.events,
      log: ic.log,
      shimBinaries: bins as Record<string, string>,
      startTimeoutMs: typeof timeout === "number" ? timeout : undefined,
    });
    await manager.restore();
    if (spares) {
      const bus = ic.get<EventBus>(eventsPluginType);
      const needsShim = async (ns: string) =>
        manager.list(ns).length === 0 && !(await hasShimSocket(ic.address, ns, ns));
      spares.watch(bus.subscribe({ signal: spares.signal }), needsShim, (ns) => manager.startShimAhead(ns));
    }
    return manager;
  },
  close: (m) => m.close(),
};
