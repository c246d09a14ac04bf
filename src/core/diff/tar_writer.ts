/**
 * A small PAX tar encoder for the layers Berth writes. tar-stream's packer writes PAX values as UTF-8
 * strings, which would corrupt binary xattrs such as `security.capability`; here records are bytes.
 */
import { concatBytes } from "../../base/bytes.ts";

export interface TarHeader {
  /** Path relative to the root, without a leading "/"; directories end with "/". */
  readonly name: string;
  readonly type: "file" | "directory" | "symlink" | "link" | "character-device" | "block-device" | "fifo";
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size?: number;
  readonly mtimeMs: number;
  readonly linkname?: string;
  readonly devmajor?: number;
  readonly devminor?: number;
  readonly xattrs?: readonly (readonly [string, Uint8Array])[];
}

const TYPE_FLAGS: Record<TarHeader["type"], string> = {
  file: "0",
  link: "1",
  symlink: "2",
  "character-device": "3",
  "block-device": "4",
  directory: "5",
  fifo: "6",
};

const enc = new TextEncoder();
export const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0");
}

/** One PAX record: "<len> <key>=<value>\n", where len counts the whole record including itself. */
function paxRecord(key: string, value: Uint8Array): Uint8Array {
  const rest = enc.encode(` ${key}=`).length + value.length + 1;
  let len = rest + 1;
  while (String(len).length + rest !== len) len = String(len).length + rest;
  return concatBytes([enc.encode(`${len} ${key}=`), value, enc.encode("\n")]);
}

function ustar(fields: {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  flag: string;
  linkname: string;
  devmajor: number;
  devminor: number;
}): Uint8Array {
  const b = new Uint8Array(BLOCK);
  const put = (off: number, len: number, s: string) => b.set(enc.encode(s).subarray(0, len), off);
  put(0, 100, fields.name);
  put(100, 8, octal(fields.mode, 8));
  put(108, 8, octal(fields.uid, 8));
  put(116, 8, octal(fields.gid, 8));
  put(124, 12, octal(fields.size, 12));
  put(136, 12, octal(fields.mtime, 12));
  b.fill(0x20, 148, 156);
  put(156, 1, fields.flag);
  put(157, 100, fields.linkname);
  put(257, 8, "ustar\u000000");
  put(329, 8, octal(fields.devmajor, 8));
  put(337, 8, octal(fields.devminor, 8));
  let sum = 0;
  for (const x of b) sum += x;
  put(148, 8, `${octal(sum, 7)}\0`);
  return b;
}

const fits = (s: string, len: number) => enc.encode(s).length <= len;
const MAX_ID = 0o7777777;
const MAX_SIZE = 0o77777777777;

/** The header block(s) of one entry: a PAX extended header first when ustar cannot hold it all. */
export function encodeHeader(h: TarHeader): Uint8Array {
  const size = h.type === "file" ? h.size ?? 0 : 0;
  const mtime = Math.floor(h.mtimeMs / 1000);
  const records: Uint8Array[] = [];
  if (!fits(h.name, 100)) records.push(paxRecord("path", enc.encode(h.name)));
  if (h.linkname && !fits(h.linkname, 100)) records.push(paxRecord("linkpath", enc.encode(h.linkname)));
  if (h.uid > MAX_ID) records.push(paxRecord("uid", enc.encode(String(h.uid))));
  if (h.gid > MAX_ID) records.push(paxRecord("gid", enc.encode(String(h.gid))));
  if (size > MAX_SIZE) records.push(paxRecord("size", enc.encode(String(size))));
  if (h.mtimeMs % 1000 !== 0) records.push(paxRecord("mtime", enc.encode((h.mtimeMs / 1000).toFixed(3))));
  for (const [k, v] of h.xattrs ?? []) records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const main = ustar({
    name: fits(h.name, 100) ? h.name : h.name.slice(0, 99),
    mode: h.mode & 0o7777,
    uid: Math.min(h.uid, MAX_ID),
    gid: Math.min(h.gid, MAX_ID),
    size: Math.min(size, MAX_SIZE),
    mtime,
    flag: TYPE_FLAGS[h.type],
    linkname: h.linkname && fits(h.linkname, 100) ? h.linkname : "",
    devmajor: h.devmajor ?? 0,
    devminor: h.devminor ?? 0,
  });
  if (records.length === 0) return main;
  const body = concatBytes(records);
  const pax = ustar({
    name: "PaxHeaders/entry",
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime,
    flag: "x",
    linkname: "",
    devmajor: 0,
    devminor: 0,
  });
  return concatBytes([pax, body, new Uint8Array(padding(body.length)), main]);
}

/** Zero bytes needed after `size` bytes of data to reach a block boundary. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** The two zero blocks that end an archive. */
export const END_OF_ARCHIVE: Uint8Array = new Uint8Array(2 * BLOCK);
