import { contentPluginType, differPluginType } from "./ids.ts";
import type { ContentStore } from "../core/content/mod.ts";
import { type BlobReader, WalkingDiffer } from "../core/diff/mod.ts";
import type { PluginDef } from "./registry.ts";

/** A BlobReader over the content store's chunked reads. */
export function contentBlobReader(store: ContentStore): BlobReader {
  return {
    read: (ns, digest, options) => ReadableStream.from(store.read(ns, digest, { signal: options?.signal })),
  };
}

/** containerd's `walking` differ (Apply only so far), reading layers from the content store. */
export const walkingDifferPlugin: PluginDef<WalkingDiffer> = {
  type: differPluginType,
  id: "walking",
  requires: [contentPluginType],
  init(ic) {
    return new WalkingDiffer(contentBlobReader(ic.get<ContentStore>(contentPluginType, "content")), {
      tempDir: ic.state,
    });
  },
};
