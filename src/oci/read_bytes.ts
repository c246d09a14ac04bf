/** Reading a whole (small) blob: manifests, indexes, configs. */

import { concatBytes } from "../base/bytes.ts";
import type { BlobStore } from "./blobs.ts";

export async function readBytes(blobs: BlobStore, digest: string): Promise<Uint8Array> {
  return await collect(blobs.read(digest));
}

export async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of it) {
    parts.push(c);
    n += c.byteLength;
  }
  return concatBytes(parts, n);
}
