import { contentPluginType, differPluginType } from "./ids.ts";
import type { ContentStore } from "../core/content/mod.ts";
import { type BlobReader, removeStaleRehearsals, WalkingDiffer } from "../core/diff/mod.ts";
import { removeStaleTempMounts } from "../core/mount/mod.ts";
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
    // Its state folder holds only its temp mounts and rehearsals: any there now were left by a daemon
    // killed mid-apply.
    const stale = removeStaleTempMounts(ic.state);
    if (stale > 0) ic.log.info("removed mounts of an interrupted apply", { mounts: stale });
    removeStaleRehearsals(ic.state);
    return new WalkingDiffer(contentBlobReader(ic.get<ContentStore>(contentPluginType, "content")), {
      tempDir: ic.state,
    });
  },
};
