/**
 * What a container's root filesystem is made of, read from an image's manifest and config for one
 * platform: the layers' diff IDs and the chain ID of their stack (the snapshot a rootfs is prepared on).
 */

import { invalidArgument } from "../base/errors.ts";
import type { BlobStore } from "./blobs.ts";
import { chainId } from "./chain_id.ts";
import type { Descriptor } from "./image.ts";
import type { ImageConfig } from "./opts.ts";
import { platformManifest } from "./platform_manifest.ts";
import { hostPlatform, type PlatformMatcher, platformMatcher } from "./platforms.ts";
import { readBytes } from "./read_bytes.ts";

export interface ImageRootfs {
  /** The manifest chosen for the platform. */
  readonly manifest: Descriptor;
  readonly config: Descriptor;
  /** The config's `config` section: the process defaults (Env, Cmd, User, …) a spec starts from. */
  readonly imageConfig: ImageConfig;
  /** `rootfs.diff_ids`: the digests of the uncompressed layers, bottom first. */
  readonly diffIds: readonly string[];
  /** The chain ID of the whole stack; "" for an image without layers. */
  readonly chainId: string;
}

/**
 * Reads from `blobs` the manifest of `target` for the platform `matcher` prefers (default: this host's,
 * as the daemon unpacks), and its config.
 */
export async function imageRootfs(
  blobs: BlobStore,
  target: Descriptor,
  options: { matcher?: PlatformMatcher } = {},
): Promise<ImageRootfs> {
  const matcher = options.matcher ?? platformMatcher([hostPlatform()]);
  const { manifest, config } = await platformManifest(blobs, target, matcher);
  const bad = (why: string) => invalidArgument(`Image config ${config.digest} is malformed: ${why}`);
  const bytes = await readBytes(blobs, config.digest);
  let doc: { config?: ImageConfig | null; rootfs?: { diff_ids?: unknown } | null };
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (typeof doc !== "object" || doc === null) throw bad("not a JSON object");
  const ids = doc.rootfs?.diff_ids ?? [];
  if (!Array.isArray(ids) || ids.some((id) => typeof id !== "string")) {
    throw bad("rootfs.diff_ids is not a list of digests");
  }
  const diffIds = ids as string[];
  return { manifest, config, imageConfig: doc.config ?? {}, diffIds, chainId: await chainId(diffIds) };
}
