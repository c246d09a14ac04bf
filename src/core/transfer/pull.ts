/**
 * Pull inside the daemon: resolve, fetch the root manifest or index, pick platforms, then fetch configs
 * and layers straight into the content store, bounded by max_concurrent_downloads, resuming interrupted
 * ingests, and labelling parents as containerd does so that garbage collection keeps the whole image.
 */

import { concatBytes } from "../../base/bytes.ts";
import type { ContentStore, Writer } from "../content/mod.ts";
import { BerthError, errorKind, failedPrecondition, notFound, unavailable } from "../../base/errors.ts";
import type { Image, ImageStore } from "../images/mod.ts";
import type { LeaseManager } from "../leases/mod.ts";
import { type Hold, withLease } from "./lease.ts";
import { parseReference, type Reference } from "../../oci/reference.ts";
import { type Descriptor, MAX_MANIFEST_SIZE } from "../../oci/image.ts";
import { type Fetcher, type Resolver } from "../remotes/mod.ts";
import { Limiter } from "./limiter.ts";
import {
  childGcLabels,
  childrenOf,
  distributionSourceLabel,
  isIndexType,
  isManifestType,
  type Parsed,
  parseManifest,
  refKey,
} from "../../oci/manifest.ts";
import {
  allPlatforms,
  hostPlatform,
  type PlatformMatcher,
  platformMatcher,
  type PlatformSpec,
} from "../../oci/platforms.ts";
import { infoOrUndefined, readAll, recordImage } from "./store_util.ts";
import { LiveBlobs } from "./live_blobs.ts";
import type { ImageRecorded, ImageUnpacker, ProgressFn, TransferEvent } from "./types.ts";
import type { DecryptionKeys, UnpackImage } from "../unpack/mod.ts";
import type { PullStats } from "./pull_stats.ts";

export const DEFAULT_MAX_CONCURRENT_DOWNLOADS = 3;

export interface PullDeps {
  readonly content: ContentStore;
  readonly images: ImageStore;
  readonly unpacker?: ImageUnpacker;
  readonly onImage?: ImageRecorded;
  /** When given, the pull holds its content in a lease until the image record points at it. */
  readonly leases?: LeaseManager;
  /** Told about every pull as it ends (the daemon's metrics). */
  readonly pullStats?: PullStats;
}

export interface PullOptions {
  /** A resolver configured for this pull (hosts, credentials, plain HTTP). */
  readonly resolver: Resolver;
  /** Wanted platforms in order of preference; default the host's. */
  readonly platforms?: readonly PlatformSpec[];
  readonly allPlatforms?: boolean;
  readonly maxConcurrentDownloads?: number;
  /** Labels of the image record. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Name of the image record; default the normalised reference. */
  readonly imageName?: string;
  /** Unpack the best-matching platform into this snapshotter, with keys for its encrypted layers. */
  readonly unpack?: { readonly snapshotter: string; readonly decryptionKeys?: DecryptionKeys };
  readonly signal?: AbortSignal;
  readonly onProgress?: ProgressFn;
}

export interface PullResult {
  readonly image: Image;
  /** The manifests fetched (one per platform pulled). */
  readonly manifests: readonly UnpackImage[];
  /** Set when the image was unpacked. */
  readonly chainId?: string;
}

/** How long a pull waits for another writer of the same ingest (another pull of the same blob). */
const LOCK_WAIT_MS = 120_000;

/** Pulls `reference` into namespace `ns` and records the image. */
export async function pull(
  deps: PullDeps,
  ns: string,
  reference: string,
  options: PullOptions,
): Promise<PullResult> {
  const job = new PullJob(deps, ns, reference, options);
  return await job.run();
}

interface ManifestJob {
  readonly image: UnpackImage;
  readonly rank: number;
  /** Settles when the config is in the store. */
  readonly config: Promise<void>;
  /** One per layer: settles when that layer is in the store. */
  readonly layers: readonly Promise<void>[];
}

class PullJob {
  readonly #deps: PullDeps;
  readonly #ns: string;
  readonly #input: string;
  readonly #options: PullOptions;
  readonly #ref: Reference;
  readonly #limiter: Limiter;
  readonly #matcher: PlatformMatcher;
  readonly #wanted: readonly PlatformSpec[];
  #fetcher: Fetcher | undefined;
  readonly #manifests: ManifestJob[] = [];
  readonly #pending: Promise<void>[] = [];
  /** Blobs already handled in this pull (an image may list one layer twice). */
  readonly #seen = new Map<string, Promise<void>>();
  /** Layers the unpacker can follow while they download (only when this pull unpacks). */
  readonly #live: LiveBlobs | undefined;
  /** Bytes fetched from the registry so far. */
  #downloaded = 0;

  constructor(deps: PullDeps, ns: string, input: string, options: PullOptions) {
    this.#deps = deps;
    this.#ns = ns;
    this.#input = input;
    this.#options = options;
    this.#ref = parseReference(input);
    this.#limiter = new Limiter(options.maxConcurrentDownloads || DEFAULT_MAX_CONCURRENT_DOWNLOADS);
    this.#wanted = options.platforms?.length ? options.platforms : [hostPlatform()];
    this.#matcher = options.allPlatforms ? allPlatforms : platformMatcher(this.#wanted);
    this.#live = options.unpack && deps.unpacker ? new LiveBlobs() : undefined;
  }

  /** Keeps a blob, an ingest or a snapshot from garbage collection while the pull runs. */
  #hold: Hold = () => Promise.resolve();

  /** Pulls under a lease of its own, deleted once the image record references what it holds. */
  async run(): Promise<PullResult> {
    const start = performance.now();
    let ok = false;
    try {
      const result = await withLease(this.#ns, (hold) => {
        this.#hold = hold;
        return this.#run();
      }, { leases: this.#deps.leases });
      ok = true;
      return result;
    } finally {
      this.#live?.close();
      this.#deps.pullStats?.record({
        ok,
        bytes: this.#downloaded,
        seconds: (performance.now() - start) / 1000,
      });
    }
  }

  async #run(): Promise<PullResult> {
    const { resolver, signal } = this.#options;
    // The applier's modules load while the registry answers, not when the first layer arrives.
    if (this.#options.unpack) void this.#deps.unpacker?.prepare?.();
    this.#emit({ ref: this.#input, digest: "", mediaType: "", status: "resolving", offset: 0, total: 0 });
    const resolved = await resolver.resolve(this.#input, { signal });
    const root = resolved.descriptor;
    this.#fetcher = resolver.fetcher(this.#input);
    this.#emit({
      ref: this.#input,
      digest: root.digest,
      mediaType: root.mediaType,
      status: "done",
      offset: 0,
      total: 0,
    });

    await this.#handle(root, Infinity);
    if (this.#manifests.length === 0) {
      throw notFound(
        `Cannot pull "${this.#input}": no manifest matches platform ${this.#wanted.map(fmt).join(", ")}`,
      );
    }
    // Unpack the best match while its layers are still arriving.
    let unpacking: Promise<{ chainId: string }> | undefined;
    const target = [...this.#manifests].sort((a, b) => a.rank - b.rank)[0]!;
    if (this.#options.unpack && this.#deps.unpacker) {
      const unpacker = this.#deps.unpacker;
      const { snapshotter, decryptionKeys } = this.#options.unpack;
      unpacking = target.config.then(() =>
        unpacker.unpack(this.#ns, target.image, {
          snapshotter,
          signal,
          decryptionKeys,
          layerReady: (i) => target.layers[i] ?? Promise.resolve(),
          layerStream: (i) => {
            const l = target.image.layers[i];
            return l ? this.#live?.take(l.digest) : undefined;
          },
          onSnapshot: (key) => this.#hold(`snapshots/${snapshotter}`, key),
          onLayer: (i, state) => {
            const l = target.image.layers[i];
            if (l && state === "unpacking") {
              this.#emit({
                ref: refKey(l),
                digest: l.digest,
                mediaType: l.mediaType,
                status: "unpacking",
                offset: l.size,
                total: l.size,
              });
            }
          },
        })
      );
      unpacking.catch(() => {});
    }
    // Every fetch settles before we report, so no ingest is still being written when the call returns.
    const results = await Promise.allSettled(this.#pending);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) {
      await unpacking?.catch(() => {});
      throw failed.reason;
    }
    const chainId = unpacking ? (await unpacking).chainId : undefined;
    const image = await recordImage(this.#deps.images, this.#ns, {
      name: this.#options.imageName || resolved.name,
      labels: this.#options.labels ?? {},
      target: { mediaType: root.mediaType, digest: root.digest, size: root.size, annotations: {} },
    }, this.#deps.onImage);
    return { image, manifests: this.#manifests.map((m) => m.image), chainId };
  }

  /** Fetches a manifest or index and walks into its children. */
  async #handle(desc: Descriptor, rank: number): Promise<void> {
    const parsed = await this.#fetchManifest(desc);
    if (parsed.kind === "index") {
      const chosen = this.#choose(parsed.manifests);
      await Promise.all(chosen.map(([m, r]) => this.#handle(m, r)));
      return;
    }
    const config = this.#blob(parsed.config);
    const layers = parsed.layers.map((l) => this.#blob(l));
    this.#manifests.push({
      image: { manifest: desc, config: parsed.config, layers: parsed.layers },
      rank: rank === Infinity ? 0 : rank,
      config,
      layers,
    });
  }

  /**
   * The manifests of an index to pull: every match with all_platforms, otherwise the best match for each
   * wanted platform (containerd's pull limits each to one). Non-manifest children (attestations) are not
   * pulled.
   */
  #choose(manifests: readonly Descriptor[]): [Descriptor, number][] {
    const candidates = manifests.filter((m) => isManifestType(m.mediaType) || isIndexType(m.mediaType));
    if (this.#options.allPlatforms) return candidates.map((m) => [m, 0]);
    const out = new Map<Descriptor, number>();
    this.#wanted.forEach((w, i) => {
      const one = platformMatcher([w]);
      let best: Descriptor | undefined;
      let bestRank = Infinity;
      for (const m of candidates) {
        const r = one.rank(m.platform);
        if (r < bestRank) [best, bestRank] = [m, r];
      }
      if (best && !out.has(best)) out.set(best, i * 1000 + bestRank);
    });
    return [...out];
  }

  /** Makes sure a manifest or index is in the store, labels it with its children, and parses it. */
  async #fetchManifest(desc: Descriptor): Promise<Parsed> {
    const { content } = this.#deps;
    const ref = refKey(desc);
    if (desc.size > MAX_MANIFEST_SIZE) {
      throw failedPrecondition(
        `Cannot pull "${this.#input}": manifest ${desc.digest} is ${desc.size} bytes, over the limit`,
      );
    }
    let bytes: Uint8Array | undefined;
    let existed = false;
    // Held before looking: a blob found present must stay present while this pull relies on it.
    await this.#hold("content", desc.digest);
    if (await infoOrUndefined(content, this.#ns, desc.digest)) {
      bytes = await readAll(content, this.#ns, desc.digest);
      existed = true;
    } else {
      bytes = await this.#limiter.run(() => this.#download(desc, ref, { keep: true }), this.#options.signal);
      if (bytes === undefined) {
        existed = true;
        bytes = await readAll(content, this.#ns, desc.digest);
      }
    }
    let parsed: Parsed;
    try {
      parsed = parseManifest(desc, bytes);
    } catch (err) {
      throw new BerthError(errorKind(err), `Cannot pull "${this.#input}": ${(err as Error).message}`);
    }
    await this.#label(desc.digest, childGcLabels(childrenOf(parsed)));
    this.#emit(event(desc, existed ? "exists" : "done", desc.size));
    return parsed;
  }

  /** Starts fetching a config or layer (once per digest); the promise settles when it is stored. */
  #blob(desc: Descriptor): Promise<void> {
    let p = this.#seen.get(desc.digest);
    if (!p) {
      p = this.#fetchBlob(desc);
      p.catch(() => {});
      this.#seen.set(desc.digest, p);
      this.#pending.push(p);
    }
    return p;
  }

  async #fetchBlob(desc: Descriptor): Promise<void> {
    const { content } = this.#deps;
    // Held before looking: a blob found present must stay present while this pull relies on it.
    await this.#hold("content", desc.digest);
    if (await infoOrUndefined(content, this.#ns, desc.digest)) {
      await this.#label(desc.digest, {});
      this.#emit(event(desc, "exists", desc.size));
      return;
    }
    const ref = refKey(desc);
    this.#emit(event(desc, "waiting", 0));
    const got = await this.#limiter.run(
      () => this.#download(desc, ref, { keep: false }),
      this.#options.signal,
    );
    if (got === undefined) {
      await this.#label(desc.digest, {});
      this.#emit(event(desc, "exists", desc.size));
    }
  }

  /**
   * Downloads `desc` into ingest `ref` and commits it, resuming what an earlier pull left. Returns the
   * bytes when `keep`, an empty array otherwise, and undefined when the store already had the blob.
   */
  async #download(desc: Descriptor, ref: string, opts: { keep: boolean }): Promise<Uint8Array | undefined> {
    const { content } = this.#deps;
    const signal = this.#options.signal;
    await this.#hold("ingests", ref);
    const w = await this.#openWriter(ref, desc);
    if (w === undefined) return undefined;
    const kept: Uint8Array[] = [];
    let offset = 0;
    try {
      offset = w.status().offset;
      if (offset > desc.size || (opts.keep && offset > 0)) {
        // Manifests are small: refetching beats reading the partial ingest back.
        await w.truncate(0);
        offset = 0;
      }
      if (offset < desc.size) {
        const resumedFrom = offset;
        const body = await this.#fetcher!.fetch(desc, { offset, signal });
        // From the first byte only: the unpacker reads a live layer from its start.
        const live = !opts.keep && resumedFrom === 0 ? this.#live?.open(desc.digest) : undefined;
        this.#emit({ ...event(desc, "downloading", offset), ...(resumedFrom > 0 ? { resumedFrom } : {}) });
        let last = 0;
        try {
          for await (const chunk of body) {
            if (offset + chunk.byteLength > desc.size) {
              await body.cancel().catch(() => {});
              throw this.#corrupt(desc, ref, `the registry sent more than its ${desc.size} bytes`);
            }
            await w.write(chunk);
            live?.push(chunk);
            if (opts.keep) kept.push(chunk);
            offset += chunk.byteLength;
            this.#downloaded += chunk.byteLength;
            const now = Date.now();
            if (now - last > 50) {
              last = now;
              this.#emit({
                ...event(desc, "downloading", offset),
                ...(resumedFrom > 0 ? { resumedFrom } : {}),
              });
            }
          }
          live?.end();
        } catch (err) {
          live?.fail(err as Error);
          if (err instanceof CorruptBlob || signal?.aborted) throw err;
          throw unavailable(
            `Cannot pull "${this.#input}": download of ${desc.digest} broke at ${offset} of ${desc.size} bytes ` +
              `(${(err as Error).message}); pull again to resume`,
            { cause: err },
          );
        }
        if (offset < desc.size) {
          throw unavailable(
            `Cannot pull "${this.#input}": download of ${desc.digest} ended at ${offset} of ${desc.size} bytes; ` +
              "pull again to resume",
          );
        }
      }
      const source = distributionSourceLabel(this.#ref.domain, this.#ref.path, {});
      // Held before it exists, so no collection finds it committed and unreferenced.
      await this.#hold("content", desc.digest);
      try {
        await w.commit(desc.size, desc.digest, { labels: source ? { [source[0]]: source[1] } : {} });
      } catch (err) {
        if (errorKind(err) === "already_exists") return undefined;
        if (errorKind(err) === "failed_precondition") {
          throw this.#corrupt(desc, ref, (err as Error).message);
        }
        throw err;
      }
      this.#emit(event(desc, "done", desc.size));
    } catch (err) {
      await w.close().catch(() => {});
      if (err instanceof CorruptBlob) {
        // Bytes that fail verification must not be resumed: drop the ingest.
        await content.abort(this.#ns, ref).catch(() => {});
        this.#emit({ ...event(desc, "error", offset), error: err.message });
        throw new BerthError("failed_precondition", err.message, { cause: err });
      }
      this.#emit({ ...event(desc, "error", offset), error: (err as Error).message });
      throw err;
    }
    return opts.keep ? concatBytes(kept) : new Uint8Array();
  }

  #corrupt(desc: Descriptor, ref: string, why: string): CorruptBlob {
    return new CorruptBlob(
      `Cannot pull "${this.#input}": content ${desc.digest} (${ref}) failed verification: ${why}`,
    );
  }

  /** A writer for the ingest, waiting while another pull holds it; undefined when the blob arrived meanwhile. */
  async #openWriter(ref: string, desc: Descriptor): Promise<Writer | undefined> {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      this.#options.signal?.throwIfAborted();
      try {
        // Not `leased`: what a pull cut short downloaded stays a day for the next pull to resume, after
        // the lease that holds it while pulling is gone (a failed pull deletes it, a restart drops it).
        return await this.#deps.content.writer(this.#ns, ref, { total: desc.size, expected: desc.digest });
      } catch (err) {
        const kind = errorKind(err);
        if (kind === "already_exists") return undefined;
        if (kind !== "unavailable" || Date.now() > deadline) throw err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Adds `labels` and the distribution source to a blob (which the caller holds), keeping its other labels. */
  async #label(digest: string, labels: Record<string, string>): Promise<void> {
    const { content } = this.#deps;
    const info = await content.info(this.#ns, digest);
    const next = { ...labels };
    const source = distributionSourceLabel(this.#ref.domain, this.#ref.path, info.labels);
    if (source) next[source[0]] = source[1];
    const changed = Object.entries(next).filter(([k, v]) => info.labels[k] !== v);
    if (changed.length === 0) return;
    await content.update(this.#ns, { digest, labels: next }, {
      fieldpaths: changed.map(([k]) => `labels.${k}`),
    });
  }

  #emit(e: TransferEvent): void {
    this.#options.onProgress?.(e);
  }
}

class CorruptBlob extends Error {}

function event(desc: Descriptor, status: TransferEvent["status"], offset: number): TransferEvent {
  return {
    ref: refKey(desc),
    digest: desc.digest,
    mediaType: desc.mediaType,
    status,
    offset,
    total: desc.size,
  };
}

function fmt(p: PlatformSpec): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}
