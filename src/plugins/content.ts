import { contentPluginType, metadataPluginType } from "./ids.ts";
import { ContentStore } from "../core/content/mod.ts";
import { type MetadataSettings, parseSharingPolicy } from "./metadata.ts";
import type { PluginDef } from "./registry.ts";

/**
 * The local content store, as containerd's `io.containerd.content.v1.content`, rooted at the plugin's
 * root folder. Sharing between namespaces is containerd's
 * `[plugins."io.containerd.metadata.v1.bolt"].content_sharing_policy` ("shared" or "isolated");
 * `sharing_policy` or `content_sharing_policy` in this plugin's own section, Berth keys, win over it.
 */
export const contentStorePlugin: PluginDef<ContentStore> = {
  type: contentPluginType,
  id: "content",
  requires: [metadataPluginType],
  configKeys: ["sharing_policy", "content_sharing_policy"],
  init(ic) {
    const bolt = ic.getAll<MetadataSettings>(metadataPluginType).get("bolt");
    const policy = parseSharingPolicy(
      ic.config["sharing_policy"] ?? ic.config["content_sharing_policy"] ?? bolt?.contentSharingPolicy ??
        "shared",
    );
    ic.exports["root"] = ic.root;
    return new ContentStore(ic.root, ic.db, { sharing: policy });
  },
};
