/**
 * SPDY/3 header blocks (draft 3.1 §2.6.10): name/value pairs with 32-bit lengths, several values of one
 * name joined by NUL, compressed with zlib over the SPDY dictionary, one compression context per
 * direction for the life of the connection, each block ending on a sync flush.
 */

import zlib from "node:zlib";
import { Buffer } from "node:buffer";
import { concatBytes } from "../../../../base/bytes.ts";
import { headerDictionary } from "./dictionary.ts";
import { GoawayStatus, SpdySessionError } from "./frames.ts";

/** Header names (lower case) to their values, in the order they came. */
export type HeaderMap = ReadonlyMap<string, readonly string[]>;

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: false });

/** The uncompressed block: names are lower-cased, as the spec requires on the wire. */
export function encodeHeaderBlock(
  headers: Iterable<readonly [string, string | readonly string[]]>,
): Uint8Array {
  const parts: Uint8Array[] = [];
  let count = 0;
  for (const [name, value] of headers) {
    const n = enc.encode(name.toLowerCase());
    const v = enc.encode(typeof value === "string" ? value : value.join("\0"));
    const pair = new Uint8Array(8 + n.length + v.length);
    const view = new DataView(pair.buffer);
    view.setUint32(0, n.length);
    pair.set(n, 4);
    view.setUint32(4 + n.length, v.length);
    pair.set(v, 8 + n.length);
    parts.push(pair);
    count++;
  }
  const head = new Uint8Array(4);
  new DataView(head.buffer).setUint32(0, count);
  return concatBytes([head, ...parts]);
}

/**
 * Reads an uncompressed block. Names are lower-cased (spdystream, the Go peer, writes them so but reads
 * leniently, and so does this); a repeated name adds values.
 */
export function decodeHeaderBlock(block: Uint8Array, maxPairs: number): Map<string, string[]> {
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const bad = (why: string) =>
    new SpdySessionError(GoawayStatus.protocolError, `Invalid header block: ${why}`);
  let at = 0;
  const u32 = () => {
    if (at + 4 > block.length) throw bad("truncated");
    const v = view.getUint32(at);
    at += 4;
    return v;
  };
  const bytes = (n: number) => {
    if (n > block.length - at) throw bad("truncated");
    const s = block.subarray(at, at + n);
    at += n;
    return s;
  };
  const count = u32();
  if (count > maxPairs) throw bad(`${count} pairs, more than the limit of ${maxPairs}`);
  const headers = new Map<string, string[]>();
  for (let i = 0; i < count; i++) {
    const name = dec.decode(bytes(u32())).toLowerCase();
    if (name === "") throw bad("an empty name");
    const values = dec.decode(bytes(u32())).split("\0");
    const list = headers.get(name);
    if (list) list.push(...values);
    else headers.set(name, values);
  }
  if (at !== block.length) throw bad(`${block.length - at} bytes after the last pair`);
  return headers;
}

/**
 * zlib's header for a stream that uses a preset dictionary: CMF 0x78 (deflate, 32 KiB window), FLG 0xF9
 * (best compression, FDICT, check bits), then the dictionary's Adler-32.
 */
function zlibDictHeader(): Uint8Array {
  const out = new Uint8Array(6);
  out[0] = 0x78;
  out[1] = 0xf9;
  new DataView(out.buffer).setUint32(2, adler32(headerDictionary));
  return out;
}

export function adler32(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < data.length;) {
    // 5552 bytes is the most that cannot overflow before the modulo (zlib's NMAX).
    const end = Math.min(i + 5552, data.length);
    for (; i < end; i++) {
      a += data[i]!;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/**
 * Runs one block through a zlib stream up to a sync flush, collecting what it emits. The owner keeps an
 * "error" listener on the stream: node:zlib reports a failure to the flush callback first, then emits it.
 */
function flushThrough(
  stream: zlib.DeflateRaw | zlib.Inflate,
  input: Uint8Array,
  maxOutput: number,
  closed: AbortSignal,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let total = 0;
    let failed = false;
    const fail = (err: Error) => {
      if (failed) return;
      failed = true;
      stream.off("data", onData);
      closed.removeEventListener("abort", onClose);
      reject(err);
    };
    // A context closed mid-block may never call back: the block fails instead of hanging its session.
    const onClose = () => fail(new Error("The header compression context was closed"));
    const onData = (chunk: Uint8Array) => {
      total += chunk.length;
      if (total > maxOutput) {
        fail(new SpdySessionError(GoawayStatus.protocolError, `Header block exceeds ${maxOutput} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    if (closed.aborted) return reject(new Error("The header compression context was closed"));
    closed.addEventListener("abort", onClose, { once: true });
    stream.on("data", onData);
    stream.write(Buffer.from(input.buffer, input.byteOffset, input.byteLength));
    stream.flush(zlib.constants.Z_SYNC_FLUSH, (err?: Error | null) => {
      if (err) return fail(err);
      if (failed) return;
      stream.off("data", onData);
      closed.removeEventListener("abort", onClose);
      resolve(concatBytes(chunks, total));
    });
  });
}

/**
 * The sending direction's context. Deno 2.9's node:zlib ignores `dictionary` when deflating (measured:
 * the same bytes with and without it, and a zlib header without FDICT), so the stream is written raw
 * behind a hand-made header that declares the SPDY dictionary: the peer loads it, as the spec says, and
 * the blocks decode alike whether or not they refer to it. Blocks are compressed one at a time, in
 * the order they are sent, since each continues the stream of the one before.
 */
export class HeaderCompressor {
  // The window and memory level are small: this side sends a handful of tiny blocks (empty SYN_REPLY
  // headers), and the default deflate state costs ~256 KiB per connection.
  readonly #deflate = zlib.createDeflateRaw({
    level: zlib.constants.Z_BEST_COMPRESSION,
    windowBits: 11,
    memLevel: 1,
    dictionary: headerDictionary,
  });
  #started = false;
  #chain: Promise<unknown> = Promise.resolve();
  readonly #closed = new AbortController();

  constructor() {
    // Failures reach compress() through the flush callback; the event would otherwise be unhandled.
    this.#deflate.on("error", () => {});
  }

  compress(block: Uint8Array): Promise<Uint8Array> {
    const next = this.#chain.then(async () => {
      const body = await flushThrough(this.#deflate, block, Number.MAX_SAFE_INTEGER, this.#closed.signal);
      if (this.#started) return body;
      this.#started = true;
      return concatBytes([zlibDictHeader(), body]);
    });
    this.#chain = next.catch(() => {});
    return next;
  }

  close(): void {
    this.#closed.abort();
    this.#deflate.close();
  }
}

/** The receiving direction's context; a block that inflates past `maxBlock` bytes ends the session. */
export class HeaderDecompressor {
  readonly #inflate = zlib.createInflate({ dictionary: headerDictionary });
  readonly #maxBlock: number;
  #chain: Promise<unknown> = Promise.resolve();
  readonly #closed = new AbortController();
  #broken: Error | undefined;

  constructor(maxBlock: number) {
    this.#maxBlock = maxBlock;
    // A corrupt stream errors the zlib object; the error is reported through decompress().
    this.#inflate.on("error", (err: Error) => this.#broken ??= err);
  }

  decompress(compressed: Uint8Array): Promise<Uint8Array> {
    const next = this.#chain.then(async () => {
      if (this.#broken) throw this.#failure(this.#broken);
      try {
        return await flushThrough(this.#inflate, compressed, this.#maxBlock, this.#closed.signal);
      } catch (err) {
        this.#broken = err as Error;
        throw this.#failure(err as Error);
      }
    });
    this.#chain = next.catch(() => {});
    return next;
  }

  #failure(err: Error): SpdySessionError {
    if (err instanceof SpdySessionError) return err;
    return new SpdySessionError(
      GoawayStatus.protocolError,
      `Cannot decompress a header block: ${err.message}`,
    );
  }

  close(): void {
    this.#closed.abort();
    this.#inflate.close();
  }
}
