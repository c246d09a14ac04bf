/** Builders for layer tars in tests (tar-stream packs them, so hostile headers are easy to make). */
import tar from "tar-stream";
import * as zlib from "node:zlib";
import { createHash } from "node:crypto";

export interface TarEntry {
  readonly header: Partial<tar.Header> & { name: string; pax?: Record<string, string> };
  readonly body?: string | Uint8Array;
}

export async function makeTar(entries: readonly TarEntry[]): Promise<Uint8Array> {
  const pack = tar.pack();
  const chunks: Uint8Array[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Uint8Array);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      pack.entry(e.header, e.body ?? "", cb);
    });
  }
  pack.finalize();
  await done;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

export const gzip = (b: Uint8Array): Uint8Array => new Uint8Array(zlib.gzipSync(b));
export const zstd = (b: Uint8Array): Uint8Array => new Uint8Array(zlib.zstdCompressSync(b));
export const sha256 = (b: Uint8Array): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** A stream that hands out `bytes` in chunks of `chunk` bytes. */
export function streamOf(bytes: Uint8Array, chunk = 16 * 1024): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(c) {
      if (off >= bytes.length) return c.close();
      c.enqueue(bytes.slice(off, off + chunk));
      off += chunk;
    },
  });
}

/** Rewrites the size field of the first tar header and fixes its checksum. */
export function patchFirstSize(tarBytes: Uint8Array, size: number): Uint8Array {
  const out = tarBytes.slice();
  const field = size.toString(8).padStart(11, "0") + "\0";
  out.set(new TextEncoder().encode(field), 124);
  out.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += out[i]!;
  out.set(new TextEncoder().encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return out;
}

/**
 * A PAX extended header (type "x") carrying `records` as raw bytes, to be placed before the entry it
 * describes: tar-stream's packer writes PAX values as UTF-8 strings and cannot make binary ones.
 */
export async function rawPaxHeader(records: readonly [string, Uint8Array][]): Promise<Uint8Array> {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const [key, value] of records) {
    const tail = enc.encode(` ${key}=`);
    let len = tail.length + value.length + 1;
    len += String(len).length;
    if (String(len).length !== String(len - String(len - 1).length).length) len++;
    parts.push(enc.encode(String(len)), tail, value, enc.encode("\n"));
  }
  const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    body.set(p, off);
    off += p.length;
  }
  const carrier = await makeTar([{ header: { name: "PaxHeader", mode: 0o644 }, body }]);
  const out = carrier.slice(0, 512 + Math.ceil(body.length / 512) * 512);
  out[156] = "x".charCodeAt(0);
  out.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += out[i]!;
  out.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
