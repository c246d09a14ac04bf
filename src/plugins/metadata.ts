import { metadataPluginType } from "./ids.ts";
import { invalidArgument } from "../base/errors.ts";
import type { PluginDef } from "./registry.ts";

export type SharingPolicy = "shared" | "isolated";

/** What Berth honours of containerd's bolt metadata plugin settings. */
export interface MetadataSettings {
  /** Unset when the config does not say, so that the content store's own key can. */
  readonly contentSharingPolicy?: SharingPolicy;
}

/**
 * containerd's `io.containerd.metadata.v1.bolt`, under its name. Berth's metadata is SQLite, opened
 * by the daemon before any plugin, but containerd's config.toml keeps `content_sharing_policy` in this
 * section, and the content store reads it from here.
 */
export const boltMetadataPlugin: PluginDef<MetadataSettings> = {
  type: metadataPluginType,
  id: "bolt",
  configKeys: ["content_sharing_policy"],
  init(ic) {
    const policy = ic.config["content_sharing_policy"];
    if (policy === undefined) return {};
    ic.exports["content_sharing_policy"] = String(policy);
    return { contentSharingPolicy: parseSharingPolicy(policy) };
  },
};

export function parseSharingPolicy(policy: unknown): SharingPolicy {
  if (policy !== "shared" && policy !== "isolated") {
    throw invalidArgument(
      `Invalid content sharing policy ${JSON.stringify(policy)}: use "shared" or "isolated"`,
    );
  }
  return policy;
}
