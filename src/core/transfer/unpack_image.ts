import { failedPrecondition } from "../../base/errors.ts";
import type { Descriptor } from "../../oci/image.ts";
import type { BlobStore } from "./blobs.ts";
import { readBytes } from "./read_bytes.ts";
import { isIndexType, parseManifest } from "../../oci/manifest.ts";
import type { PlatformMatcher } from "../../oci/platforms.ts";
import type { ImageUnpacker } from "./types.ts";
import type { LeaseManager } from "../leases/mod.ts";
import { withLease } from "./lease.ts";

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

/**
 * Unpacks an image whose blobs are already in the content store (imported, or pulled with
 * --skip-unpack) into `snapshotter`; chains already present are skipped. The snapshots it makes are
 * held by a lease until the image's config names the top one.
 */
export async function unpackStoredImage(
  deps: { blobs: BlobStore; unpacker: ImageUnpacker; leases?: LeaseManager },
  ns: string,
  target: Descriptor,
  options: { snapshotter: string; matcher: PlatformMatcher; signal?: AbortSignal },
): Promise<{ chainId: string }> {
  const image = await platformManifest(deps.blobs, target, options.matcher);
  const { snapshotter, signal } = options;
  return await withLease(ns, (hold) =>
    deps.unpacker.unpack(ns, image, {
      snapshotter,
      signal,
      onSnapshot: (key) => hold(`snapshots/${snapshotter}`, key),
    }), { leases: deps.leases });
}
