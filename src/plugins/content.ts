import { ContentStore } from "../core/content/mod.ts";
import { invalidArgument } from "../core/errdefs/mod.ts";
import type { PluginDef } from "./registry.ts";

export const contentPluginType = "io.containerd.content.v1";

/**
 * The local content store, as containerd's `io.containerd.content.v1.content`, rooted at the plugin's
 * root folder. Config: `sharing_policy = "shared" | "isolated"` (containerd's
 * `[plugins."io.containerd.metadata.v1.bolt"].content_sharing_policy`, which also works here).
 */
export const contentStorePlugin: PluginDef<ContentStore> = {
  type: contentPluginType,
  id: "content",
  configKeys: ["sharing_policy", "content_sharing_policy"],
  init(ic) {
    const policy = ic.config["sharing_policy"] ?? ic.config["content_sharing_policy"] ?? "shared";
    if (policy !== "shared" && policy !== "isolated") {
      throw invalidArgument(
        `Invalid content sharing policy ${JSON.stringify(policy)}: use "shared" or "isolated"`,
      );
    }
    ic.exports["root"] = ic.root;
    return new ContentStore(ic.root, ic.db, { sharing: policy });
  },
};
