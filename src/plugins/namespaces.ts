import { metadataNamespacesPluginId, metadataPluginType } from "./ids.ts";
import { NamespaceStore } from "../core/namespaces/mod.ts";
import type { PluginDef } from "./registry.ts";

/** The namespace store sits with the metadata plugins, as containerd's bolt metadata does. */
export const namespaceStorePlugin: PluginDef<NamespaceStore> = {
  type: metadataPluginType,
  id: metadataNamespacesPluginId,
  init: (ic) => new NamespaceStore(ic.db),
};
