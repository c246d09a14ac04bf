/** Finding the manifest an image offers for a platform, as containerd's images.Manifest does. */

import { failedPrecondition } from "../base/errors.ts";
import type { BlobStore } from "./blobs.ts";
import type { Descriptor } from "./image.ts";
import { isIndexType, parseManifest } from "./manifest.ts";
import type { PlatformMatcher } from "./platforms.ts";
import { readBytes } from "./read_bytes.ts";

/** The manifest of `target` for the best-matching platform, with its config and layers. */
export async function platformManifest(
  blobs: BlobStore,
  target: Descriptor,
  matcher: PlatformMatcher,
): Promise<{ manifest: Descriptor; config: Descriptor; layers: Descriptor[] }> {
  let desc = target;
  for (let depth = 0; depth < 4; depth++) {
    const parsed = parseManifest(desc, await readBytes(blobs, desc.digest));
    if (parsed.kind === "manifest") {
      return { manifest: desc, config: parsed.config, layers: [...parsed.layers] };
    }
    const best = parsed.manifests
      .filter((m) => matcher.match(m.platform))
      .sort((a, b) => matcher.rank(a.platform) - matcher.rank(b.platform))[0];
    if (!best) throw failedPrecondition(`Image index ${desc.digest} has no manifest for this platform`);
    desc = best;
    if (!isIndexType(desc.mediaType)) continue;
  }
  throw failedPrecondition(`Image ${target.digest} nests indexes too deeply`);
}
