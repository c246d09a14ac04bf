/** The daemon's side of src/oci/blobs.ts: a BlobStore and ImageRecords over its own stores. */

import { Digester } from "../content/mod.ts";
import type { ContentStore } from "../content/mod.ts";
import { errorKind, failedPrecondition } from "../../base/errors.ts";
import type { ImageStore } from "../images/mod.ts";
import type { BlobStore, ImageRecords } from "../../oci/blobs.ts";
import { infoOrUndefined, recordImage } from "./store_util.ts";
import type { ImageRecorded } from "./types.ts";

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
