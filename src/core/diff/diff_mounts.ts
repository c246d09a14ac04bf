/**
 * Diff.Diff (containerd's walking differ Compare): mount two snapshots, write what the upper one
 * changed as a layer tar, compress it, and commit it to the content store.
 */
import { streamHash } from "../../base/hash.ts";
import type { Readable } from "node:stream";
import type { MountSyscalls } from "../../../ffi/mount.ts";
import type { ContentStore } from "../content/mod.ts";
import { isAlreadyExists, notImplemented } from "../../base/errors.ts";
import { type Mount, readonlyMounts, withTempMount } from "../mount/mod.ts";
import { writeDiff } from "./compare.ts";
import { type Compression, layerCompression } from "./media_types.ts";
import type { Descriptor } from "../../oci/image.ts";

export const LABEL_UNCOMPRESSED = "containerd.io/uncompressed";
const DEFAULT_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip";

export interface DiffMountsOptions {
  readonly namespace: string;
  /** Where the layer goes (only writer, info and update are used). */
  readonly content: Pick<ContentStore, "writer" | "info" | "update" | "abort">;
  /** Layer media type; decides the compression. Default: OCI tar+gzip. */
  readonly mediaType?: string;
  /** Ingest ref; a unique one by default (a given ref is truncated and reused, as in containerd). */
  readonly ref?: string;
  /** Labels of the committed blob (`containerd.io/uncompressed` is added for compressed layers). */
  readonly labels?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
  readonly tempDir?: string;
  readonly syscalls?: MountSyscalls;
  /** Called with the layer's digest just before it is committed (the service leases it there). */
  readonly beforeCommit?: (digest: string) => Promise<void>;
}

/** node:zlib is loaded when a compressed diff is made, not at every daemon start. */
async function compressor(c: Compression): Promise<NodeJS.ReadWriteStream | undefined> {
  if (c === "none") return undefined;
  const zlib = await import("node:zlib");
  return c === "gzip" ? zlib.createGzip() : zlib.createZstdCompress();
}

function uniqueRef(): string {
  const rand = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(3))))
    .replaceAll("+", "-").replaceAll("/", "_");
  return `${BigInt(Math.floor(Date.now())) * 1_000_000n}-${rand}`;
}

/**
 * Writes the changes of `upper` over `lower` as a layer blob into the content store and returns its
 * descriptor. Empty `lower` means "from nothing" (a base layer).
 */
export async function diffMounts(
  lower: readonly Mount[],
  upper: readonly Mount[],
  options: DiffMountsOptions,
): Promise<Descriptor> {
  const mediaType = options.mediaType || DEFAULT_MEDIA_TYPE;
  let compression: Compression;
  try {
    compression = layerCompression(mediaType);
  } catch {
    throw notImplemented(`Cannot create a diff of media type "${mediaType}": not a supported layer type`);
  }
  const comp = await compressor(compression);
  // Loaded with the first diff, not at the daemon's start (it brings node's compatibility layer).
  const { Readable } = await import("node:stream");
  const mountOpts = { tempDir: options.tempDir, syscalls: options.syscalls };
  return await withTempMount(lower, (lowerRoot) =>
    withTempMount(readonlyMounts(upper), async (upperRoot) => {
      const ns = options.namespace;
      const ref = options.ref || uniqueRef();
      const w = await options.content.writer(ns, ref);
      let committed = false;
      try {
        if (options.ref) await w.truncate(0);
        const uncompressed = streamHash("sha256");
        const tar = Readable.from((async function* () {
          for await (const chunk of writeDiff(lowerRoot, upperRoot, { signal: options.signal })) {
            uncompressed.update(chunk);
            yield chunk;
          }
        })());
        const out: Readable = comp
          ? tar.pipe(comp as unknown as NodeJS.WritableStream) as unknown as Readable
          : tar;
        if (comp) tar.on("error", (err) => (comp as unknown as Readable).destroy(err));
        for await (const chunk of out) await w.write(chunk as Uint8Array);
        const labels: Record<string, string> = { ...options.labels };
        if (comp) labels[LABEL_UNCOMPRESSED] = `sha256:${uncompressed.hex()}`;
        const digest = w.digest();
        await options.beforeCommit?.(digest);
        try {
          await w.commit(0, digest, { labels });
        } catch (err) {
          if (!isAlreadyExists(err)) throw err;
        }
        committed = true;
        const info = await options.content.info(ns, digest);
        if (comp && info.labels[LABEL_UNCOMPRESSED] === undefined) {
          await options.content.update(ns, {
            digest,
            labels: { [LABEL_UNCOMPRESSED]: labels[LABEL_UNCOMPRESSED]! },
          }, {
            fieldpaths: [`labels.${LABEL_UNCOMPRESSED}`],
          });
        }
        return { mediaType, digest, size: info.size };
      } finally {
        if (!committed) {
          await w.close().catch(() => {});
          if (!options.ref) await options.content.abort(ns, ref).catch(() => {});
        }
      }
    }, mountOpts), mountOpts);
}
