import { containerStorePluginId, containerStorePluginType } from "./ids.ts";
import { ContainerStore } from "../core/containers/mod.ts";
import type { PluginDef } from "./registry.ts";

/** The container store, registered under containerd 1.6's service plugin name (`ctr plugins ls`). */

export const containerStorePlugin: PluginDef<ContainerStore> = {
  type: containerStorePluginType,
  id: containerStorePluginId,
  init: (ic) => new ContainerStore(ic.db),
};
