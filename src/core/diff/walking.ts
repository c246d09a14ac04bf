/**
 * The walking differ's Apply, as containerd's `io.containerd.differ.v1.walking`: mount the target
 * snapshot on a temp dir, stream the layer blob from the content store into it, return the diff ID.
 * The Diff service and the daemon's unpacker both apply layers through it.
 */
import { notImplemented } from "../../base/errors.ts";
import type { Descriptor } from "../../oci/image.ts";
import { type Mount, withTempMount } from "../mount/mod.ts";
import type { MountSyscalls } from "../../../ffi/mount.ts";
import { applyLayer, prepareApply, rehearseApply } from "./apply.ts";

/** Where layer blobs come from (the content store, in the daemon). */
export interface BlobReader {
  read(namespace: string, digest: string, options?: { signal?: AbortSignal }): ReadableStream<Uint8Array>;
}

export interface DifferApplyOptions {
  readonly signal?: AbortSignal;
  /** Stream processor payloads (containerd's `payloads`); none are supported yet. */
  readonly payloads?: Readonly<Record<string, unknown>>;
  /** Fail, before anything is committed, unless the uncompressed layer has this digest (its diff ID). */
  readonly expectedDiffId?: string;
  /** The layer's bytes as they download (a pull's unpacker); by default read from the blob store. */
  readonly source?: ReadableStream<Uint8Array>;
}

/** What applies a layer onto mounts: the walking differ, or any plugin of io.containerd.differ.v1. */
export interface LayerApplier {
  apply(
    namespace: string,
    desc: Descriptor,
    mounts: readonly Mount[],
    options?: DifferApplyOptions,
  ): Promise<Descriptor>;
  /**
   * Loads what applying needs ahead of the first apply, where that costs something; `rehearse`: the
   * caller has time idle before the first layer, to run the applier's code once too.
   */
  prepare?(options?: { rehearse?: boolean }): Promise<void>;
}

export const uncompressedLayerType = "application/vnd.oci.image.layer.v1.tar";

export class WalkingDiffer implements LayerApplier {
  readonly #blobs: BlobReader;
  readonly #options: { syscalls?: MountSyscalls; tempDir?: string };

  #prepared: Promise<void> | undefined;
  #rehearsed: Promise<void> | undefined;

  constructor(blobs: BlobReader, options: { syscalls?: MountSyscalls; tempDir?: string } = {}) {
    this.#blobs = blobs;
    this.#options = options;
  }

  /**
   * Loads the modules an apply needs ahead of the first one, and with `rehearse` (and a temp folder)
   * applies a small layer there too (each once; see prepareApply and rehearseApply).
   */
  prepare(options: { rehearse?: boolean } = {}): Promise<void> {
    this.#prepared ??= prepareApply().catch(() => {});
    const scratch = this.#options.tempDir;
    if (!options.rehearse || scratch === undefined) return this.#prepared;
    return this.#rehearsed ??= this.#prepared.then(() => rehearseApply(scratch)).catch(() => {});
  }

  /**
   * Applies the layer `desc` onto `mounts`; returns the uncompressed layer's descriptor (its digest is
   * the diff ID). Whiteouts are applied as deletions through the mount, so overlay records them itself.
   */
  async apply(
    namespace: string,
    desc: Descriptor,
    mounts: readonly Mount[],
    options: DifferApplyOptions = {},
  ): Promise<Descriptor> {
    if (options.payloads && Object.keys(options.payloads).length > 0) {
      throw notImplemented(`Cannot apply layer ${desc.digest}: stream processor payloads are not supported`);
    }
    const run = (root: string) =>
      applyLayer(
        options.source ?? this.#blobs.read(namespace, desc.digest, { signal: options.signal }),
        root,
        {
          mediaType: desc.mediaType,
          whiteouts: "native",
          expectedDiffId: options.expectedDiffId,
          signal: options.signal,
        },
      );
    const dir = plainFolder(mounts);
    const res = dir !== undefined ? await run(dir) : await withTempMount(mounts, run, this.#options);
    return { mediaType: uncompressedLayerType, digest: res.diffId, size: res.size };
  }
}

/**
 * The folder a mount list stands for when it is a single writable bind of the whole tree (a base
 * overlay snapshot, any native one): applying there directly saves a mount and an unmount.
 */
function plainFolder(mounts: readonly Mount[]): string | undefined {
  const [m] = mounts;
  if (mounts.length !== 1 || !m || m.type !== "bind" || (m.target ?? "") !== "") return undefined;
  if (m.options.includes("ro")) return undefined;
  return m.source;
}
