import { contentPluginType, metadataPluginType } from "./ids.ts";
import {
  type ContentBackend,
  ContentStore,
  type RemoteContentBackend,
  type RemoteContentBackendOptions,
} from "../core/content/mod.ts";
import { failedPrecondition } from "../base/errors.ts";
import { type MetadataSettings, parseSharingPolicy } from "./metadata.ts";
import type { PluginDef } from "./registry.ts";

/** The built-in content plugin's id. */
const LOCAL_ID = "content";

/**
 * The content store, as containerd's `io.containerd.content.v1.content` and the content half of its
 * metadata plugin together: namespaces, labels and what collection keeps are Berth's database, and the
 * bytes are in the plugin's root folder, or in the content proxy when one is configured
 * (`[proxy_plugins.NAME] type = "content"`, loaded first as `io.containerd.content.v1.NAME`).
 * containerd 1.6 wraps whichever content plugin its plugin map yields first, so its users disable this
 * one; Berth takes the proxy whenever there is one, and refuses a config with two (see config.ts).
 *
 * Sharing between namespaces is containerd's
 * `[plugins."io.containerd.metadata.v1.bolt"].content_sharing_policy` ("shared" or "isolated");
 * `sharing_policy` or `content_sharing_policy` in this plugin's own section, Berth keys, win over it.
 */
export const contentStorePlugin: PluginDef<ContentStore> = {
  type: contentPluginType,
  id: LOCAL_ID,
  requires: [metadataPluginType, contentPluginType],
  configKeys: ["sharing_policy", "content_sharing_policy"],
  init(ic) {
    const bolt = ic.getAll<MetadataSettings>(metadataPluginType).get("bolt");
    const policy = parseSharingPolicy(
      ic.config["sharing_policy"] ?? ic.config["content_sharing_policy"] ?? bolt?.contentSharingPolicy ??
        "shared",
    );
    const proxies = [...ic.getAll<ContentBackend>(contentPluginType)].filter(([id]) => id !== LOCAL_ID);
    if (proxies.length > 1) {
      throw failedPrecondition(
        `Cannot choose between content proxy plugins ${proxies.map(([id]) => `"${id}"`).join(", ")}`,
      );
    }
    const proxy = proxies[0];
    if (proxy !== undefined) {
      ic.exports["backend"] = `${contentPluginType}.${proxy[0]}`;
      return new ContentStore(proxy[1], ic.db, { sharing: policy });
    }
    ic.exports["root"] = ic.root;
    return new ContentStore(ic.root, ic.db, { sharing: policy });
  },
};

/**
 * `[proxy_plugins.NAME] type = "content"`: a content store served by another process over containerd's
 * Content API, the backend of the content store above. Loaded without connecting, as containerd: a
 * proxy that is down fails only the calls made while it is, each naming it and its address.
 */
export function proxyContentPlugin(
  name: string,
  options: { address: string; transport: RemoteContentBackendOptions["transport"] },
): PluginDef<RemoteContentBackend> {
  return {
    type: contentPluginType,
    id: name,
    async init(ic) {
      ic.exports["address"] = options.address;
      const { RemoteContentBackend } = await import("../core/content/remote.ts");
      return new RemoteContentBackend({ name, address: options.address, transport: options.transport });
    },
    close: (backend) => backend.close(),
  };
}
