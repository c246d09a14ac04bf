/**
 * The narrow view of content and image records that import and export need, so the same code runs in the
 * daemon (over the stores) and in the CLI (over the Content and Images services, as ctr does).
 */

import { Digester } from "../content/mod.ts";
import type { ContentStore } from "../content/mod.ts";
import { errorKind, failedPrecondition } from "../../base/errors.ts";
import type { ImageStore } from "../images/mod.ts";
import type { Descriptor } from "../../oci/image.ts";
import { infoOrUndefined, recordImage } from "./store_util.ts";
import type { ImageRecorded } from "./types.ts";

export interface BlobInfo {
  readonly size: number;
  readonly labels: Readonly<Record<string, string>>;
}

export interface BlobWriteOptions {
  /** The digest the data must hash to; without it the computed one is used. */
  readonly expected?: string;
  readonly size?: number;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface BlobStore {
  /** undefined when the blob is absent. */
  info(digest: string): Promise<BlobInfo | undefined>;
  read(digest: string): AsyncIterable<Uint8Array>;
  /** Stores and commits `data` under ingest `ref`; a blob that is already there is fine. */
  write(
    ref: string,
    data: AsyncIterable<Uint8Array>,
    options?: BlobWriteOptions,
  ): Promise<{ digest: string; size: number }>;
  /** Sets the given labels, keeping the others. */
  label(digest: string, labels: Readonly<Record<string, string>>): Promise<void>;
}

export interface ImageRecord {
  readonly name: string;
  readonly target: Descriptor;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface ImageRecords {
  get(name: string): Promise<ImageRecord>;
  /** Points `name` at `target`, creating the record when needed. */
  put(image: ImageRecord): Promise<void>;
}

/** A BlobStore over the daemon's content store, in one namespace. */
export function localBlobStore(content: ContentStore, ns: string): BlobStore {
  return {
    info: (digest) => infoOrUndefined(content, ns, digest),
    read: (digest) => content.read(ns, digest),
    async write(ref, data, options = {}) {
      const expected = options.expected ?? "";
      let w;
      try {
        w = await content.writer(ns, ref, { expected, total: options.size ?? 0 });
      } catch (err) {
        if (errorKind(err) === "already_exists" && expected) {
          for await (const _ of data) { /* drain the source */ }
          return { digest: expected, size: (await content.info(ns, expected)).size };
        }
        throw err;
      }
      const d = new Digester();
      let size = 0;
      try {
        await w.truncate(0);
        for await (const chunk of data) {
          await w.write(chunk);
          d.update(chunk);
          size += chunk.byteLength;
        }
        const digest = expected || d.digest();
        if (expected && d.digest() !== expected) {
          await content.abort(ns, ref).catch(() => {});
          throw failedPrecondition(`Content ${ref} hashes to ${d.digest()}, not ${expected}`);
        }
        try {
          await w.commit(options.size ?? 0, digest, { labels: options.labels });
        } catch (err) {
          if (errorKind(err) !== "already_exists") throw err;
        }
        return { digest, size };
      } finally {
        await w.close();
      }
    },
    async label(digest, labels) {
      const keys = Object.keys(labels);
      if (keys.length === 0) return;
      await content.update(ns, { digest, labels }, { fieldpaths: keys.map((k) => `labels.${k}`) });
    },
  };
}

/** ImageRecords over the daemon's image store, in one namespace. */
export function localImageRecords(images: ImageStore, ns: string, onImage?: ImageRecorded): ImageRecords {
  return {
    async get(name) {
      const img = await images.get(ns, name);
      return { name: img.name, labels: img.labels, target: img.target };
    },
    async put(image) {
      await recordImage(images, ns, {
        name: image.name,
        labels: image.labels ?? {},
        target: { annotations: {}, ...image.target },
      }, onImage);
    },
  };
}
