/**
 * HPACK (RFC 7541). The decoder is complete: static and dynamic tables, table size updates and Huffman
 * strings. The encoder never indexes and never uses Huffman, which every decoder must accept, so it keeps
 * no state and needs no coordination with the peer's table size.
 */

import { huffmanCodes, huffmanLengths, staticTable } from "./hpack_tables.ts";

export type HeaderField = [name: string, value: string];

export class HpackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HpackError";
  }
}

/** Per entry overhead in the dynamic table's size accounting (RFC 7541 §4.1). */
const entryOverhead = 32;

/** Decodes header blocks of one connection; the dynamic table lives as long as the connection. */
export class HpackDecoder {
  /** Newest first. */
  readonly #table: HeaderField[] = [];
  #size = 0;
  #maxSize: number;
  /** The SETTINGS_HEADER_TABLE_SIZE we advertised: the ceiling for size updates. */
  readonly #limit: number;

  constructor(maxTableSize = 4096) {
    this.#maxSize = maxTableSize;
    this.#limit = maxTableSize;
  }

  /** Current dynamic table size in RFC 7541 units (for tests). */
  get tableSize(): number {
    return this.#size;
  }

  /** Dynamic table entries, newest first (for tests). */
  get table(): readonly HeaderField[] {
    return this.#table;
  }

  /** Decodes a whole header block (no size limit: for tests and trusted input). */
  decode(block: Uint8Array): HeaderField[] {
    return this.decodeList(block, Infinity).fields;
  }

  /**
   * Decodes a header block, collecting fields while the list stays within `maxListSize` (name + value + 32
   * per field, RFC 9113 §6.5.2). Past it nothing more is collected or copied (`truncated`), but the block is
   * still read to its end, so that the dynamic table stays in step with the peer's and the connection
   * stays usable (RFC 9113 §10.5.1). A reference costs no string, so reading on is linear in the block.
   */
  decodeList(block: Uint8Array, maxListSize: number): { fields: HeaderField[]; truncated: boolean } {
    const out: HeaderField[] = [];
    const r = { pos: 0 };
    let fieldsSeen = false;
    let listSize = 0;
    let truncated = false;
    const collect = (field: HeaderField) => {
      listSize += field[0].length + field[1].length + entryOverhead;
      if (listSize > maxListSize) truncated = true;
      else out.push(field);
    };
    while (r.pos < block.length) {
      const b = block[r.pos]!;
      if (b & 0x80) {
        const index = readInt(block, r, 7);
        if (truncated) this.#check(index);
        else collect(this.#entry(index));
      } else if (b & 0x40) {
        const field = this.#literal(block, r, 6);
        this.#add(field);
        if (!truncated) collect(field);
      } else if (b & 0x20) {
        // Size updates are only allowed before the first field of a block.
        if (fieldsSeen) throw new HpackError("Cannot decode header block: table size update after a field");
        const size = readInt(block, r, 5);
        if (size > this.#limit) {
          throw new HpackError(`Cannot decode header block: table size ${size} exceeds ${this.#limit}`);
        }
        this.#maxSize = size;
        this.#evict(0);
        continue;
      } else if (truncated) {
        // Without indexing (0000) and never indexed (0001): nothing to keep, so nothing to decode.
        const index = readInt(block, r, 4);
        if (index === 0) skipString(block, r);
        else this.#check(index);
        skipString(block, r);
      } else {
        collect(this.#literal(block, r, 4));
      }
      fieldsSeen = true;
    }
    if (truncated) out.length = 0;
    return { fields: out, truncated };
  }

  #check(index: number): void {
    if (index === 0) throw new HpackError("Cannot decode header block: index 0");
    if (index > staticTable.length + this.#table.length) {
      throw new HpackError(`Cannot decode header block: index ${index} is past the tables`);
    }
  }

  #entry(index: number): HeaderField {
    if (index === 0) throw new HpackError("Cannot decode header block: index 0");
    if (index <= staticTable.length) {
      const e = staticTable[index - 1]!;
      return [e[0], e[1]];
    }
    const e = this.#table[index - staticTable.length - 1];
    if (!e) throw new HpackError(`Cannot decode header block: index ${index} is past the tables`);
    return [e[0], e[1]];
  }

  #literal(block: Uint8Array, r: { pos: number }, prefix: number): HeaderField {
    const index = readInt(block, r, prefix);
    const name = index === 0 ? readString(block, r) : this.#entry(index)[0];
    return [name, readString(block, r)];
  }

  #add(field: HeaderField): void {
    const size = field[0].length + field[1].length + entryOverhead;
    if (size > this.#maxSize) {
      // An entry larger than the table empties it (RFC 7541 §4.4).
      this.#table.length = 0;
      this.#size = 0;
      return;
    }
    this.#evict(size);
    this.#table.unshift(field);
    this.#size += size;
  }

  #evict(room: number): void {
    while (this.#size + room > this.#maxSize && this.#table.length > 0) {
      const e = this.#table.pop()!;
      this.#size -= e[0].length + e[1].length + entryOverhead;
    }
  }
}

/** Static table index of each name (first occurrence), and of whole name/value pairs. */
const staticNames = new Map<string, number>();
const staticPairs = new Map<string, number>();
staticTable.forEach(([name, value], i) => {
  if (!staticNames.has(name)) staticNames.set(name, i + 1);
  if (value !== "") staticPairs.set(`${name}\0${value}`, i + 1);
});

/** Encodes header fields as literals without indexing (static-table names and exact pairs are referenced). */
export function encodeHeaders(fields: Iterable<HeaderField>): Uint8Array {
  const out = new ByteWriter();
  for (const [name, value] of fields) {
    const pair = staticPairs.get(`${name}\0${value}`);
    if (pair !== undefined) {
      out.int(pair, 7, 0x80);
      continue;
    }
    const index = staticNames.get(name);
    if (index !== undefined) {
      out.int(index, 4, 0x00);
    } else {
      out.byte(0x00);
      out.string(name);
    }
    out.string(value);
  }
  return out.bytes();
}

class ByteWriter {
  #buf = new Uint8Array(256);
  #len = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  byte(b: number): void {
    this.#room(1);
    this.#buf[this.#len++] = b;
  }

  int(value: number, prefix: number, flags: number): void {
    const max = (1 << prefix) - 1;
    if (value < max) {
      this.byte(flags | value);
      return;
    }
    this.byte(flags | max);
    value -= max;
    while (value >= 128) {
      this.byte((value & 0x7f) | 0x80);
      value = Math.floor(value / 128);
    }
    this.byte(value);
  }

  /** A raw (non-Huffman) string; header text is bytes, one per UTF-16 code unit as Latin-1. */
  string(s: string): void {
    this.int(s.length, 7, 0x00);
    this.#room(s.length);
    for (let i = 0; i < s.length; i++) this.#buf[this.#len++] = s.charCodeAt(i) & 0xff;
  }

  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }
}

function readInt(block: Uint8Array, r: { pos: number }, prefix: number): number {
  const max = (1 << prefix) - 1;
  let value = block[r.pos++]! & max;
  if (value < max) return value;
  let shift = 0;
  for (;;) {
    if (r.pos >= block.length) throw new HpackError("Cannot decode header block: truncated integer");
    const b = block[r.pos++]!;
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) break;
    if (shift > 28) throw new HpackError("Cannot decode header block: integer too large");
  }
  return value;
}

/** Steps over a string without decoding it. */
function skipString(block: Uint8Array, r: { pos: number }): void {
  if (r.pos >= block.length) throw new HpackError("Cannot decode header block: truncated string");
  const length = readInt(block, r, 7);
  if (r.pos + length > block.length) throw new HpackError("Cannot decode header block: string past the end");
  r.pos += length;
}

function readString(block: Uint8Array, r: { pos: number }): string {
  if (r.pos >= block.length) throw new HpackError("Cannot decode header block: truncated string");
  const huffman = (block[r.pos]! & 0x80) !== 0;
  const length = readInt(block, r, 7);
  const end = r.pos + length;
  if (end > block.length) throw new HpackError("Cannot decode header block: string past the end");
  const bytes = block.subarray(r.pos, end);
  r.pos = end;
  return huffman ? huffmanDecode(bytes) : latin1(bytes);
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return s;
}

/**
 * The Huffman code as a binary trie in one array: node n's children are at 2n and 2n+1; a value ≥ 0 is
 * the next node, a negative value -(symbol+1) is a leaf. Symbol 256 is EOS. Built at the first Huffman
 * string (~1.5 ms): Berth's own encoder never sends one, so a CLI talking to Berth never builds it.
 */
let trie: Int32Array | undefined;

function buildTrie(): Int32Array {
  const codes = [...huffmanCodes, 0x3fffffff];
  const lengths = [...huffmanLengths, 30];
  const nodes: number[] = [0, 0];
  let count = 1;
  for (let sym = 0; sym < codes.length; sym++) {
    const code = codes[sym]!;
    const len = lengths[sym]!;
    let node = 0;
    for (let i = len - 1; i >= 0; i--) {
      const slot = 2 * node + ((code >>> i) & 1);
      if (i === 0) {
        nodes[slot] = -(sym + 1);
      } else {
        if (nodes[slot] === 0) {
          nodes[slot] = count++;
          nodes.push(0, 0);
        }
        node = nodes[slot]!;
      }
    }
  }
  return Int32Array.from(nodes);
}

export function huffmanDecode(bytes: Uint8Array): string {
  const nodes = trie ??= buildTrie();
  const out: number[] = [];
  let node = 0;
  // Bits since the last symbol, and whether they were all ones: the only valid padding (RFC 7541 §5.2).
  let pending = 0;
  let allOnes = true;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      const one = (b >> bit) & 1;
      const next = nodes[2 * node + one]!;
      pending++;
      allOnes &&= one === 1;
      if (next < 0) {
        const sym = -next - 1;
        if (sym === 256) throw new HpackError("Cannot decode Huffman string: it contains EOS");
        out.push(sym);
        node = 0;
        pending = 0;
        allOnes = true;
      } else {
        node = next;
      }
    }
  }
  if (pending > 7 || !allOnes) throw new HpackError("Cannot decode Huffman string: invalid padding");
  let s = "";
  for (let i = 0; i < out.length; i += 4096) s += String.fromCharCode(...out.slice(i, i + 4096));
  return s;
}

/** Huffman-encodes a Latin-1 string (the encoder doesn't use it; tests and peers' fixtures do). */
export function huffmanEncode(s: string): Uint8Array {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff;
    const code = huffmanCodes[sym]!;
    const len = huffmanLengths[sym]!;
    for (let j = len - 1; j >= 0; j--) {
      acc = (acc << 1) | ((code >>> j) & 1);
      if (++bits === 8) {
        out.push(acc);
        acc = 0;
        bits = 0;
      }
    }
  }
  if (bits > 0) out.push((acc << (8 - bits)) | ((1 << (8 - bits)) - 1));
  return Uint8Array.from(out);
}
