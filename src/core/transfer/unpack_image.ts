import type { BlobStore } from "../../oci/blobs.ts";
import type { Descriptor } from "../../oci/image.ts";
import { platformManifest } from "../../oci/platform_manifest.ts";
import type { PlatformMatcher } from "../../oci/platforms.ts";
import type { ImageUnpacker } from "./types.ts";
import type { LeaseManager } from "../leases/mod.ts";
import { withLease } from "./lease.ts";
import type { DecryptionKeys } from "../unpack/mod.ts";

/**
 * Unpacks an image whose blobs are already in the content store (imported, or pulled with
 * --skip-unpack) into `snapshotter`; chains already present are skipped. The snapshots it makes are
 * held by a lease until the image's config names the top one.
 */
export async function unpackStoredImage(
  deps: { blobs: BlobStore; unpacker: ImageUnpacker; leases?: LeaseManager },
  ns: string,
  target: Descriptor,
  options: {
    snapshotter: string;
    matcher: PlatformMatcher;
    signal?: AbortSignal;
    decryptionKeys?: DecryptionKeys;
  },
): Promise<{ chainId: string }> {
  const image = await platformManifest(deps.blobs, target, options.matcher);
  const { snapshotter, signal, decryptionKeys } = options;
  return await withLease(ns, (hold) =>
    deps.unpacker.unpack(ns, image, {
      snapshotter,
      signal,
      decryptionKeys,
      onSnapshot: (key) => hold(`snapshots/${snapshotter}`, key),
    }), { leases: deps.leases });
}
