import { imageStorePluginId, imageStorePluginType } from "./ids.ts";
import { ImageStore } from "../core/images/mod.ts";
import type { PluginDef } from "./registry.ts";

/**
 * The image store. containerd 1.6 has no plugin type of its own for it: the store lives in the bolt
 * metadata plugin and is exposed as the service plugin `io.containerd.service.v1.images-service`,
 * which is what `ctr plugins ls` shows, so Berth registers it under that name.
 */

export const imageStorePlugin: PluginDef<ImageStore> = {
  type: imageStorePluginType,
  id: imageStorePluginId,
  init: (ic) => new ImageStore(ic.db),
};
