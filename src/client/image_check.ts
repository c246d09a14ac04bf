/** What ctr's `images ls` and `images check` learn by walking an image's content (images.Check, Platforms). */

import type { Descriptor } from "../oci/image.ts";
import type { BlobStore } from "../oci/blobs.ts";
import { readBytes } from "../oci/read_bytes.ts";
import { isIndexType, isManifestType, parseManifest } from "../oci/manifest.ts";
import { formatPlatform, type PlatformMatcher } from "../oci/platforms.ts";

export interface ImageCheck {
  /** False when the root (or a manifest on the way) is missing, so the required set is not known. */
  readonly available: boolean;
  readonly required: readonly Descriptor[];
  readonly present: readonly Descriptor[];
  readonly missing: readonly Descriptor[];
  /** Platforms the image offers (from its index entries, or its config), `os/arch[/variant]`. */
  readonly platforms: readonly string[];
  /** The config of the manifest that matched, for unpack checks. */
  readonly config?: Descriptor;
}

/** Walks `target` for the platforms `matcher` accepts, noting which blobs are present. */
export async function checkImage(
  blobs: BlobStore,
  target: Descriptor,
  matcher: PlatformMatcher,
): Promise<ImageCheck> {
  const required: Descriptor[] = [];
  const present: Descriptor[] = [];
  const missing: Descriptor[] = [];
  const platforms = new Set<string>();
  let available = true;
  let config: Descriptor | undefined;
  const walk = async (desc: Descriptor, top: boolean): Promise<void> => {
    required.push(desc);
    if (!(await blobs.info(desc.digest))) {
      missing.push(desc);
      if (isIndexType(desc.mediaType) || isManifestType(desc.mediaType)) available = false;
      return;
    }
    present.push(desc);
    if (!isIndexType(desc.mediaType) && !isManifestType(desc.mediaType)) return;
    const parsed = parseManifest(desc, await readBytes(blobs, desc.digest));
    if (parsed.kind === "index") {
      for (const m of parsed.manifests) {
        if (top && m.platform) platforms.add(formatPlatform(m.platform));
      }
      // Only the best match counts, as ctr's Check with platforms.Default() limits to one manifest.
      const candidates = parsed.manifests
        .filter((m) => matcher.match(m.platform))
        .sort((a, b) => matcher.rank(a.platform) - matcher.rank(b.platform));
      if (candidates[0]) await walk(candidates[0], false);
      return;
    }
    config ??= parsed.config;
    if (top) {
      try {
        const c = JSON.parse(new TextDecoder().decode(await readBytes(blobs, parsed.config.digest)));
        if (c.os && c.architecture) platforms.add(formatPlatform(c));
      } catch { /* config missing: counted below */ }
    }
    for (const b of [parsed.config, ...parsed.layers]) await walk(b, false);
  };
  await walk(target, true);
  return { available, required, present, missing, platforms: [...platforms].sort(), config };
}
