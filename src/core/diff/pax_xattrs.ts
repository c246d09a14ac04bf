/**
 * tar-stream decodes PAX values as UTF-8 strings, which mangles binary xattrs such as
 * security.capability. This tracker reads the same uncompressed bytes alongside it, keeps the raw
 * `SCHILY.xattr.*` values of each entry, and hands them out in entry order, so the applier can set
 * the exact bytes. It only follows header boundaries; tar-stream remains the parser of record.
 */

const BLOCK = 512;
/** PAX headers larger than this are left to tar-stream alone (no real layer has them). */
const MAX_PAX = 1 << 20;
const XATTR_PREFIX = "SCHILY.xattr.";

export type RawXattrs = Map<string, Uint8Array>;

interface PaxRecords {
  xattrs: RawXattrs;
  size?: number;
}

function parseOctalOrBinary(field: Uint8Array): number {
  if ((field[0]! & 0x80) !== 0) {
    // GNU base-256: big-endian, the top bit of the first byte is the marker.
    let n = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  let s = "";
  for (const b of field) {
    if (b === 0 || b === 0x20) {
      if (s !== "") break;
      continue;
    }
    s += String.fromCharCode(b);
  }
  return s === "" ? 0 : parseInt(s, 8);
}

function nameEndsWithSlash(h: Uint8Array): boolean {
  let end = 0;
  while (end < 100 && h[end] !== 0) end++;
  return end > 0 && h[end - 1] === 0x2f;
}

function parsePax(body: Uint8Array): PaxRecords {
  const out: PaxRecords = { xattrs: new Map() };
  const dec = new TextDecoder();
  let at = 0;
  while (at < body.length) {
    let sp = at;
    while (sp < body.length && body[sp] !== 0x20) sp++;
    const len = parseInt(dec.decode(body.subarray(at, sp)), 10);
    if (!(len > 0) || at + len > body.length) break;
    const rec = body.subarray(sp + 1, at + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq > 0) {
      const key = dec.decode(rec.subarray(0, eq));
      const value = rec.subarray(eq + 1);
      if (key.startsWith(XATTR_PREFIX)) out.xattrs.set(key.slice(XATTR_PREFIX.length), value.slice());
      else if (key === "size") out.size = parseInt(dec.decode(value), 10);
    }
    at += len;
  }
  return out;
}

export class PaxXattrTracker {
  #header = new Uint8Array(BLOCK);
  #headerFill = 0;
  /** Bytes of data (plus padding) still to skip, or to collect when #collect is set. */
  #skip = 0;
  #collect: { buf: Uint8Array; fill: number; global: boolean } | undefined;
  #pending: PaxRecords | undefined;
  #global: RawXattrs = new Map();
  readonly #queue: (RawXattrs | undefined)[] = [];

  /** Feed every uncompressed byte, in order. */
  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - at);
        if (this.#collect) {
          const c = this.#collect;
          const room = Math.min(n, c.buf.length - c.fill);
          c.buf.set(chunk.subarray(at, at + room), c.fill);
          c.fill += room;
        }
        this.#skip -= n;
        at += n;
        if (this.#skip === 0 && this.#collect) this.#finishPax();
        continue;
      }
      const n = Math.min(BLOCK - this.#headerFill, chunk.length - at);
      this.#header.set(chunk.subarray(at, at + n), this.#headerFill);
      this.#headerFill += n;
      at += n;
      if (this.#headerFill === BLOCK) {
        this.#headerFill = 0;
        this.#onHeader(this.#header);
      }
    }
  }

  /** The raw xattrs of the next entry tar-stream will emit (undefined when it has none). */
  next(): RawXattrs | undefined {
    return this.#queue.shift();
  }

  #onHeader(h: Uint8Array): void {
    if (h.every((b) => b === 0)) return;
    const type = String.fromCharCode(h[156]!);
    let size = parseOctalOrBinary(h.subarray(124, 136));
    const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;
    if (type === "x" || type === "g") {
      this.#skip = padded(size);
      if (size <= MAX_PAX) this.#collect = { buf: new Uint8Array(size), fill: 0, global: type === "g" };
      if (this.#skip === 0) this.#finishPax();
      return;
    }
    if (type === "L" || type === "K") {
      this.#skip = padded(size);
      return;
    }
    const pax = this.#pending;
    this.#pending = undefined;
    if (pax?.size !== undefined) size = pax.size;
    const xattrs = new Map([...this.#global, ...(pax?.xattrs ?? [])]);
    this.#queue.push(xattrs.size > 0 ? xattrs : undefined);
    // As tar-stream decides: only directories (type 5, or an old-style name ending in "/") have no data.
    this.#skip = type === "5" || ((type === "0" || h[156] === 0) && nameEndsWithSlash(h)) ? 0 : padded(size);
  }

  #finishPax(): void {
    const c = this.#collect;
    this.#collect = undefined;
    if (!c) return;
    const rec = parsePax(c.buf.subarray(0, c.fill));
    if (c.global) {
      for (const [k, v] of rec.xattrs) this.#global.set(k, v);
    } else {
      this.#pending = rec;
    }
  }
}
