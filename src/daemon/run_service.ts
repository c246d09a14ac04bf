import type { TaskManager } from "../core/runtime/mod.ts";
import {
  containerStorePluginType,
  grpcPluginType,
  runtimePluginId,
  runtimePluginType,
} from "../plugins/ids.ts";
import type { GrpcService, PluginDef } from "../plugins/registry.ts";

/**
 * berth.run.v1.Run: `berth ctr run` in one call. The daemon makes ctr's calls on its own API, as a client
 * of its own socket (src/client/new_container.ts, the steps the CLI takes the long way), so the records,
 * events and checks are those of the long way; the CLI only moves the stdio. It lives with the daemon,
 * not among the services over core, because it is a client of them.
 */
export const runServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: "run",
  // It drives the Tasks service: without a runtime there is nothing to run.
  requires: [runtimePluginType, containerStorePluginType],
  init(ic) {
    ic.get<TaskManager>(runtimePluginType, runtimePluginId);
    return {
      register() {},
      deferred: {
        prefixes: ["/berth.run.v1.Run/"],
        load: async () => (await import("./run_handlers.ts")).createRunService(ic.address),
        warm: true,
      },
    };
  },
};
