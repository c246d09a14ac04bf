/**
 * The Content and Images services seen as src/oci's BlobStore and ImageRecords, so that image tools
 * (src/client/archive, image_check) run in a client as they would in the daemon; and the lease a
 * client-side transfer holds while it writes.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { BlobStore, ImageRecords } from "../oci/blobs.ts";
import { WriteAction, type WriteContentRequestSchema } from "../gen/services/content/v1/content_pb.ts";
import type { BerthClient } from "./mod.ts";
import { streamHash } from "../base/hash.ts";
import { isCode } from "./errors.ts";

const WRITE_CHUNK = 1 << 20;

/** Calls carry this lease (`containerd-lease`), so that what they write outlives no garbage collection. */
export interface CallScope {
  readonly lease?: string;
  readonly signal?: AbortSignal;
}

function callOptions(scope: CallScope) {
  return { signal: scope.signal, headers: scope.lease ? { "containerd-lease": scope.lease } : undefined };
}

/** A BlobStore over the Content service (what ctr does client-side for import and export). */
export function clientBlobStore(client: BerthClient, scope: CallScope = {}): BlobStore {
  const opts = callOptions(scope);
  return {
    async info(digest) {
      try {
        const { info } = await client.content.info({ digest }, opts);
        return { size: Number(info?.size ?? 0n), labels: info?.labels ?? {} };
      } catch (err) {
        if (isCode(err, Code.NotFound)) return undefined;
        throw err;
      }
    },
    async *read(digest) {
      for await (const res of client.content.read({ digest }, opts)) yield res.data;
    },
    async write(ref, data, options = {}) {
      // Present already: skip the upload, but read the source to its end (a tar entry must be
      // consumed before the archive moves on to the next one).
      const present = options.expected ? await this.info(options.expected) : undefined;
      if (options.expected && present) {
        for await (const _ of data) { /* skip */ }
        if (options.labels && Object.keys(options.labels).length > 0) {
          await this.label(options.expected, options.labels);
        }
        return { digest: options.expected, size: present.size };
      }
      const hash = streamHash("sha256");
      let size = 0;
      let digest = options.expected ?? "";
      type Req = MessageInitShape<typeof WriteContentRequestSchema>;
      const total = BigInt(options.size ?? 0);
      const expected = options.expected ?? "";
      async function* requests(): AsyncGenerator<Req> {
        let first = true;
        for await (const chunk of data) {
          for (let at = 0; at < chunk.byteLength; at += WRITE_CHUNK) {
            const piece = chunk.subarray(at, at + WRITE_CHUNK);
            yield {
              action: WriteAction.WRITE,
              ref,
              total,
              expected: first ? expected : "",
              offset: BigInt(size),
              data: piece,
            };
            first = false;
            hash.update(piece);
            size += piece.byteLength;
          }
        }
        digest ||= `sha256:${hash.hex()}`;
        yield {
          action: WriteAction.COMMIT,
          ref,
          total: BigInt(size),
          expected: digest,
          offset: BigInt(size),
          labels: { ...options.labels },
        };
      }
      try {
        for await (const _ of client.content.write(requests(), opts)) { /* one answer per message */ }
      } catch (err) {
        if (!isCode(err, Code.AlreadyExists)) throw err;
        if (!digest) throw err;
        // Someone committed it meanwhile: still read the source to its end, as above.
        try {
          for await (const _ of data) { /* skip */ }
        } catch { /* the source was already closed */ }
      }
      return { digest, size };
    },
    async label(digest, labels) {
      const paths = Object.keys(labels).map((k) => `labels.${k}`);
      if (paths.length === 0) return;
      await client.content.update({ info: { digest, labels: { ...labels } }, updateMask: { paths } }, opts);
    },
  };
}

/** ImageRecords over the Images service: update the target, create when missing (ctr import's way). */
export function clientImageRecords(client: BerthClient, scope: CallScope = {}): ImageRecords {
  const opts = callOptions(scope);
  return {
    async get(name) {
      const { image } = await client.images.get({ name }, opts);
      const t = image?.target;
      return {
        name,
        labels: image?.labels ?? {},
        target: { mediaType: t?.mediaType ?? "", digest: t?.digest ?? "", size: Number(t?.size ?? 0n) },
      };
    },
    async put(img) {
      const target = {
        mediaType: img.target.mediaType,
        digest: img.target.digest,
        size: BigInt(img.target.size),
      };
      try {
        await client.images.update(
          { image: { name: img.name, target }, updateMask: { paths: ["target"] } },
          opts,
        );
      } catch (err) {
        if (!isCode(err, Code.NotFound)) throw err;
        await client.images.create({ image: { name: img.name, target, labels: { ...img.labels } } }, opts);
      }
    },
  };
}

/** Creates a lease that expires on its own (ctr's WithLease: 24 h) for a client-side transfer. */
export async function withLease<T>(client: BerthClient, fn: (lease: string) => Promise<T>): Promise<T> {
  const expire = new Date(Date.now() + 24 * 3600_000).toISOString();
  const { lease } = await client.leases.create({ labels: { "containerd.io/gc.expire": expire } });
  const id = lease?.id ?? "";
  try {
    return await fn(id);
  } finally {
    await client.leases.delete({ id }).catch(() => {});
  }
}
