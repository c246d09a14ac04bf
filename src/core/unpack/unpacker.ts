/**
 * The unpacker, after containerd 1.6's: for each layer of an image, in order, a snapshot named by the
 * layer's chain ID is prepared on its parent chain, the layer blob is applied into it from the content
 * store, and it is committed. Chains already present are skipped; a failed layer leaves nothing behind.
 */
import type { BasicLogger } from "../../base/log.ts";
import type { Descriptor } from "../../oci/image.ts";
import { concatBytes } from "../../base/bytes.ts";
import type { LayerApplier } from "../diff/mod.ts";
import { BerthError, internal, invalidArgument, isAlreadyExists, isNotFound } from "../../base/errors.ts";
import type { ContentStore } from "../content/mod.ts";
import type { Mount } from "../mount/mod.ts";
import type { Snapshotter } from "../snapshots/mod.ts";
import { chainIds } from "../../oci/chain_id.ts";
import type { LayerCipherOptions, NamedKey } from "../../oci/imgcrypt/mod.ts";
import { isEncryptedLayerType, plainLayerType } from "../../oci/imgcrypt/spec.ts";

/** The layer cipher and its key wrapping (with jose), loaded for the first encrypted layer only. */
const imgcrypt = () => import("../../oci/imgcrypt/mod.ts");

export interface UnpackImage {
  readonly manifest: Descriptor;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

export type LayerState = "waiting" | "unpacking" | "done" | "exists";

export interface UnpackOptions {
  /** The snapshotter's name: "overlayfs", "native", … */
  readonly snapshotter: string;
  readonly signal?: AbortSignal;
  /** Resolves once layer `index` is in the content store (lets unpacking overlap the download). */
  readonly layerReady?: (index: number) => Promise<void>;
  /**
   * Layer `index` as it downloads, from its first byte, when the caller can offer it: the layer is then
   * applied while it arrives, and committed only once layerReady (the digest check) resolves. When that
   * stream fails, the layer is applied again from the content store.
   */
  readonly layerStream?: (index: number) => ReadableStream<Uint8Array> | undefined;
  /**
   * Called with each snapshot key before it is made, and with each layer's chain ID before the
   * unpacker checks whether it exists, so a caller's lease can hold them (GC).
   */
  readonly onSnapshot?: (key: string) => Promise<void>;
  readonly onLayer?: (index: number, state: LayerState) => void;
  /**
   * Private keys for encrypted layers (ocicrypt): every encrypted layer's key is unwrapped before the
   * first snapshot is prepared, so an image the keys do not open leaves nothing behind.
   */
  readonly decryptionKeys?: DecryptionKeys;
}

/** Loads the keys when an image has encrypted layers (a daemon reads its key folders only then). */
export type DecryptionKeys = () => Promise<readonly NamedKey[]>;

export interface UnpackerDeps {
  /** Where layer blobs and their labels are; layers are read from it through `differ`. */
  readonly content: ContentStore;
  readonly snapshotters: ReadonlyMap<string, Snapshotter>;
  /** Applies each layer (the daemon's io.containerd.differ.v1 plugin). */
  readonly differ: LayerApplier;
  readonly log?: BasicLogger;
}

const LABEL_SNAPSHOT_REF = "containerd.io/snapshot.ref";
const INHERITED_LABEL_PREFIX = "containerd.io/snapshot/";
const LABEL_UNCOMPRESSED = "containerd.io/uncompressed";

export class Unpacker {
  readonly #content: ContentStore;
  readonly #snapshotters: ReadonlyMap<string, Snapshotter>;
  readonly #differ: LayerApplier;
  readonly #log?: BasicLogger;
  /** One unpack at a time per chain; later ones find the snapshot committed and skip it. */
  readonly #chainLocks = new Map<string, Promise<void>>();

  constructor(deps: UnpackerDeps) {
    this.#content = deps.content;
    this.#snapshotters = deps.snapshotters;
    this.#differ = deps.differ;
    this.#log = deps.log;
  }

  /** Loads the differ's modules ahead of a first unpack (a pull calls it as it starts). */
  prepare(): Promise<void> {
    return this.#differ.prepare?.() ?? Promise.resolve();
  }

  async unpack(ns: string, image: UnpackImage, options: UnpackOptions): Promise<{ chainId: string }> {
    const sn = this.#snapshotters.get(options.snapshotter);
    if (!sn) {
      throw invalidArgument(
        `Cannot unpack image ${image.manifest.digest}: snapshotter "${options.snapshotter}" is not loaded`,
      );
    }
    const diffIds = await this.#diffIds(ns, image);
    const chain = await chainIds(diffIds);
    const ciphers = await this.#unwrapKeys(image, options.decryptionKeys);
    for (const [i, layer] of image.layers.entries()) {
      options.signal?.throwIfAborted();
      try {
        await this.#locked(`${options.snapshotter}\0${ns}\0${chain[i]}`, () =>
          this.#unpackLayer(ns, sn, {
            index: i,
            layer,
            diffId: diffIds[i]!,
            chainId: chain[i]!,
            parent: chain[i - 1] ?? "",
            cipher: ciphers.get(i),
          }, options));
      } catch (err) {
        if (options.signal?.aborted) throw options.signal.reason;
        const msg = `Cannot unpack layer ${
          i + 1
        } of ${image.layers.length} (${layer.digest}) of image ${image.manifest.digest}: ${
          (err as Error).message
        }`;
        throw new BerthError(err instanceof BerthError ? err.kind : "internal", msg, { cause: err });
      }
    }
    const top = chain.at(-1) ?? "";
    if (top !== "") {
      const label = `containerd.io/gc.ref.snapshot.${options.snapshotter}`;
      await this.#content.update(ns, { digest: image.config.digest, labels: { [label]: top } }, {
        fieldpaths: [`labels.${label}`],
      });
    }
    this.#log?.debug("image unpacked", {
      config: image.config.digest,
      chainID: top,
      snapshotter: options.snapshotter,
    });
    return { chainId: top };
  }

  /**
   * The cipher options of every encrypted layer, by index, as imgcrypt's CheckAuthorization: all of
   * them, even layers whose snapshot exists, so an image is refused to whoever lacks its keys.
   */
  async #unwrapKeys(
    image: UnpackImage,
    loadKeys: DecryptionKeys | undefined,
  ): Promise<Map<number, LayerCipherOptions>> {
    const out = new Map<number, LayerCipherOptions>();
    let keys: readonly NamedKey[] | undefined;
    for (const [i, layer] of image.layers.entries()) {
      if (!isEncryptedLayerType(layer.mediaType)) continue;
      try {
        keys ??= loadKeys ? await loadKeys() : [];
        out.set(i, await (await imgcrypt()).unwrapLayerOptions(layer, keys));
      } catch (err) {
        throw new BerthError(
          err instanceof BerthError ? err.kind : "internal",
          `Cannot unpack image ${image.manifest.digest}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    return out;
  }

  async #diffIds(ns: string, image: UnpackImage): Promise<string[]> {
    const chunks: Uint8Array[] = [];
    for await (const c of this.#content.read(ns, image.config.digest)) chunks.push(c);
    let config: { rootfs?: { diff_ids?: unknown } };
    try {
      config = JSON.parse(new TextDecoder().decode(concatBytes(chunks)));
    } catch (err) {
      throw invalidArgument(
        `Cannot unpack image ${image.manifest.digest}: config ${image.config.digest} is not JSON: ${
          (err as Error).message
        }`,
      );
    }
    const ids = config.rootfs?.diff_ids;
    if (!Array.isArray(ids) || ids.some((d) => typeof d !== "string" || !/^sha256:[0-9a-f]{64}$/.test(d))) {
      throw invalidArgument(
        `Cannot unpack image ${image.manifest.digest}: config ${image.config.digest} has no valid rootfs.diff_ids`,
      );
    }
    if (ids.length !== image.layers.length) {
      throw invalidArgument(
        `Cannot unpack image ${image.manifest.digest}: ${image.layers.length} layers but ${ids.length} diff IDs in its config`,
      );
    }
    return ids as string[];
  }

  async #locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    for (let held = this.#chainLocks.get(key); held; held = this.#chainLocks.get(key)) await held;
    let release!: () => void;
    this.#chainLocks.set(key, new Promise<void>((r) => (release = r)));
    try {
      return await fn();
    } finally {
      this.#chainLocks.delete(key);
      release();
    }
  }

  async #unpackLayer(
    ns: string,
    sn: Snapshotter,
    l: LayerJob,
    options: UnpackOptions,
  ): Promise<void> {
    // Held before looking: a chain found committed (say, left by an image just removed) must not be
    // collected before this image's config names it, and later layers need it as their parent.
    await options.onSnapshot?.(l.chainId);
    if (await exists(sn, ns, l.chainId)) {
      options.onLayer?.(l.index, "exists");
      return;
    }
    options.onLayer?.(l.index, "waiting");
    const live = options.layerStream?.(l.index);
    if (live) {
      try {
        return await this.#extract(ns, sn, l, options, live);
      } catch (err) {
        options.signal?.throwIfAborted();
        // The download's own failure shows in layerReady below; anything else is retried from the store
        // (for an encrypted layer, its HMAC checked first: a tampered one fails there, by name).
        this.#log?.debug("live unpack failed, applying from the content store", {
          digest: l.layer.digest,
          error: String(err),
        });
      }
    }
    // Not live (its download had not begun, or fell behind): read it from the store once it is there.
    await options.layerReady?.(l.index);
    options.signal?.throwIfAborted();
    if (l.cipher) await this.#verifyEncrypted(ns, l, l.cipher);
    await this.#extract(ns, sn, l, options, undefined);
  }

  /**
   * Checks an encrypted layer's HMAC over its whole ciphertext, read from the store, before any of it is
   * decrypted into a snapshot: the path of a layer already downloaded, and of one whose live unpack
   * failed (a tampered layer then fails here, naming its HMAC).
   */
  async #verifyEncrypted(ns: string, l: LayerJob, cipher: LayerCipherOptions): Promise<void> {
    const { verifyLayerHmac } = await imgcrypt();
    await verifyLayerHmac(this.#content.read(ns, l.layer.digest), cipher, `layer ${l.layer.digest}`);
  }

  /** Applies one layer into a new snapshot and commits it under its chain ID. */
  async #extract(
    ns: string,
    sn: Snapshotter,
    l: LayerJob,
    options: UnpackOptions,
    live: ReadableStream<Uint8Array> | undefined,
  ): Promise<void> {
    const labels: Record<string, string> = { [LABEL_SNAPSHOT_REF]: l.chainId };
    for (const [k, v] of Object.entries(l.layer.annotations ?? {})) {
      if (k.startsWith(INHERITED_LABEL_PREFIX)) labels[k] = v;
    }
    let key = "";
    let mounts: Mount[] | undefined;
    for (let attempt = 0; mounts === undefined; attempt++) {
      key = `extract-${uniquePart()} ${l.chainId}`;
      await options.onSnapshot?.(key);
      try {
        mounts = await sn.prepare(ns, key, { parent: l.parent, labels });
      } catch (err) {
        // A key collision (rare) retries with a new one; anything else is the caller's problem.
        if (!isAlreadyExists(err) || attempt >= 2) throw err;
      }
    }
    options.onLayer?.(l.index, "unpacking");
    try {
      await this.#apply(ns, l, mounts, options.signal, live);
      // Applied from the download itself: nothing is committed before its digest check passed.
      if (live) await options.layerReady?.(l.index);
      try {
        await sn.commit(ns, l.chainId, { key, labels });
      } catch (err) {
        // Another unpacker (e.g. a client-side one through the API) committed the same chain first.
        if (!isAlreadyExists(err)) throw err;
        await sn.remove(ns, key);
      }
    } catch (err) {
      await sn.remove(ns, key).catch((rmErr) =>
        this.#log?.warn("cannot remove extraction snapshot", { key, error: String(rmErr) })
      );
      throw err;
    }
    // Set only once the diff ID is verified, as containerd does.
    await this.#content.update(ns, { digest: l.layer.digest, labels: { [LABEL_UNCOMPRESSED]: l.diffId } }, {
      fieldpaths: [`labels.${LABEL_UNCOMPRESSED}`],
    });
    options.onLayer?.(l.index, "done");
  }

  async #apply(
    ns: string,
    l: LayerJob,
    mounts: readonly Mount[],
    signal: AbortSignal | undefined,
    live: ReadableStream<Uint8Array> | undefined,
  ): Promise<void> {
    let layer = l.layer;
    let source = live;
    let hmacChecked = true;
    if (l.cipher) {
      // From the store, its HMAC was verified on these same bytes (#verifyEncrypted). From the download,
      // it is decrypted as it arrives, as ocicrypt's reader does, and the HMAC is checked at the end of
      // the ciphertext, before the caller commits anything: the download streams at full speed instead
      // of waiting for its last byte before the first is applied. The diff ID is checked below either way.
      // Both sources hand out chunks no one else reads: the store's reads are fresh arrays, and the
      // pull's content writer is done with a chunk before it goes live (Writer.write keeps nothing).
      const { decryptLayerStream } = await imgcrypt();
      const plain = decryptLayerStream(live ?? this.#content.read(ns, layer.digest), l.cipher, {
        verify: live !== undefined,
        what: `layer ${layer.digest}`,
        inPlace: true,
      });
      hmacChecked = live === undefined;
      source = readAhead(
        (async function* () {
          yield* plain;
          hmacChecked = true;
        })(),
        DECRYPT_AHEAD,
      );
      layer = { ...layer, mediaType: plainLayerType(layer.mediaType)! };
    }
    // Through a mount (or into a plain folder) deletions are real: overlay records them itself.
    await this.#differ.apply(ns, layer, mounts, { signal, expectedDiffId: l.diffId, source });
    if (!hmacChecked) {
      throw internal(
        `Layer ${layer.digest} was applied before the end of its ciphertext: its HMAC is unchecked`,
      );
    }
  }
}

/**
 * Chunks decrypted ahead of the applier, so that the next chunks' decryption (Web Crypto's AES-CTR, an
 * async op) overlaps this one's gunzip (zlib's own thread) and tar instead of waiting for them.
 */
const DECRYPT_AHEAD = 8;

/** A stream over `chunks` that reads up to `ahead` of them before they are asked for. */
function readAhead(chunks: AsyncIterable<Uint8Array>, ahead: number): ReadableStream<Uint8Array> {
  const it = chunks[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel(reason) {
      await it.return?.(reason);
    },
  }, new CountQueuingStrategy({ highWaterMark: ahead }));
}

interface LayerJob {
  readonly index: number;
  readonly layer: Descriptor;
  readonly diffId: string;
  readonly chainId: string;
  readonly parent: string;
  /** Set for an encrypted layer: its unwrapped cipher options. */
  readonly cipher?: LayerCipherOptions;
}

async function exists(sn: Snapshotter, ns: string, key: string): Promise<boolean> {
  try {
    await sn.stat(ns, key);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** `<nanoseconds>-<random>`, as containerd makes extraction keys unique. */
function uniquePart(): string {
  const nanos = BigInt(Math.floor(performance.timeOrigin * 1e3 + performance.now() * 1e3)) * 1000n;
  const rand = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(3))))
    .replaceAll("+", "-").replaceAll("/", "_");
  return `${nanos % 1_000_000_000n}-${rand}`;
}
