/**
 * The double walk behind Diff.Diff (containerd's archive.WriteDiff over fs.Changes): both trees are
 * walked side by side in name order, and what the upper tree added or changed is emitted as tar
 * entries, what it removed as `.wh.<name>` whiteouts.
 */
import { type FsSyscalls, fsSyscalls } from "../../../ffi/fs.ts";
import { encodeHeader, END_OF_ARCHIVE, padding, type TarHeader } from "./tar_writer.ts";

export interface WriteDiffOptions {
  readonly signal?: AbortSignal;
  readonly syscalls?: FsSyscalls;
}

const READ_CHUNK = 1 << 20;

type Stat = Deno.FileInfo;

function kindOf(st: Stat): TarHeader["type"] {
  if (st.isDirectory) return "directory";
  if (st.isSymlink) return "symlink";
  if (st.isFile) return "file";
  if (st.isCharDevice) return "character-device";
  if (st.isBlockDevice) return "block-device";
  if (st.isFifo) return "fifo";
  throw new Error(`Unsupported file type (mode ${(st.mode ?? 0).toString(8)})`);
}

async function lstatOrUndefined(path: string): Promise<Stat | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

async function names(dir: string | undefined): Promise<string[]> {
  if (dir === undefined) return [];
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out;
}

/** Byte order, as Go's sort of path names. */
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function sameContent(a: string, b: string): Promise<boolean> {
  using fa = await Deno.open(a);
  using fb = await Deno.open(b);
  const ba = new Uint8Array(READ_CHUNK);
  const bb = new Uint8Array(READ_CHUNK);
  for (;;) {
    const na = await readFull(fa, ba);
    const nb = await readFull(fb, bb);
    if (na !== nb) return false;
    if (na === 0) return true;
    for (let i = 0; i < na; i++) if (ba[i] !== bb[i]) return false;
  }
}

async function readFull(f: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let n = 0;
  while (n < buf.length) {
    const got = await f.read(buf.subarray(n));
    if (got === null) break;
    n += got;
  }
  return n;
}

class DiffWalker {
  readonly #lower: string;
  readonly #upper: string;
  readonly #sys: FsSyscalls;
  readonly #signal?: AbortSignal;
  /** Inodes already written, for hard links: "dev:ino" → tar name. */
  readonly #links = new Map<string, string>();

  constructor(lower: string, upper: string, options: WriteDiffOptions) {
    this.#lower = lower;
    this.#upper = upper;
    this.#sys = options.syscalls ?? fsSyscalls();
    this.#signal = options.signal;
  }

  #xattrs(path: string): [string, Uint8Array][] {
    const out: [string, Uint8Array][] = [];
    // Overlay's own bookkeeping never belongs in a layer.
    for (const name of this.#sys.llistxattr(path).sort(byteOrder)) {
      if (name.startsWith("trusted.overlay.")) continue;
      const v = this.#sys.lgetxattr(path, name);
      if (v !== undefined) out.push([name, v]);
    }
    return out;
  }

  async #changed(rel: string, l: Stat, u: Stat): Promise<boolean> {
    // Overlay shows a file not copied up with its lower inode: same inode, same file.
    if (l.dev === u.dev && l.ino === u.ino && !u.isDirectory) return false;
    if (l.mode !== u.mode || l.uid !== u.uid || l.gid !== u.gid) return true;
    if (u.isDirectory) return l.mtime?.getTime() !== u.mtime?.getTime() || this.#xattrsDiffer(rel);
    if (l.rdev !== u.rdev || l.size !== u.size || l.mtime?.getTime() !== u.mtime?.getTime()) return true;
    if (this.#xattrsDiffer(rel)) return true;
    if (u.isSymlink) return await Deno.readLink(this.#lower + rel) !== await Deno.readLink(this.#upper + rel);
    // Same size and mtime (which a copy-up keeps): only the bytes can tell.
    if (u.isFile) return !(await sameContent(this.#lower + rel, this.#upper + rel));
    return false;
  }

  #xattrsDiffer(rel: string): boolean {
    const a = this.#xattrs(this.#lower + rel);
    const b = this.#xattrs(this.#upper + rel);
    return a.length !== b.length || a.some(([k, v], i) => {
      const [k2, v2] = b[i]!;
      return k !== k2 || v.length !== v2.length || v.some((x, j) => x !== v2[j]);
    });
  }

  async *#entry(rel: string, st: Stat): AsyncGenerator<Uint8Array> {
    const path = this.#upper + rel;
    const type = kindOf(st);
    const name = rel.slice(1) + (type === "directory" ? "/" : "");
    const base = {
      name,
      mode: st.mode ?? 0,
      uid: st.uid ?? 0,
      gid: st.gid ?? 0,
      mtimeMs: st.mtime?.getTime() ?? 0,
      xattrs: type === "symlink" ? [] : this.#xattrs(path),
    };
    if (type === "file" && (st.nlink ?? 1) > 1) {
      const id = `${st.dev}:${st.ino}`;
      const first = this.#links.get(id);
      if (first !== undefined) {
        yield encodeHeader({ ...base, type: "link", linkname: first });
        return;
      }
      this.#links.set(id, name);
    }
    if (type === "symlink") {
      yield encodeHeader({ ...base, type, linkname: await Deno.readLink(path) });
    } else if (type === "character-device" || type === "block-device") {
      const rdev = st.rdev ?? 0;
      // glibc's gnu_dev_major / gnu_dev_minor for the 32-bit values Deno reports.
      yield encodeHeader({
        ...base,
        type,
        devmajor: (rdev >>> 8) & 0xfff,
        devminor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00),
      });
    } else if (type === "file") {
      using f = await Deno.open(path);
      yield encodeHeader({ ...base, type, size: st.size });
      let left = st.size;
      const buf = new Uint8Array(READ_CHUNK);
      while (left > 0) {
        this.#signal?.throwIfAborted();
        const n = await readFull(f, buf.subarray(0, Math.min(READ_CHUNK, left)));
        if (n === 0) throw new Error(`File ${rel} shrank while being diffed`);
        yield buf.slice(0, n);
        left -= n;
      }
      const pad = padding(st.size);
      if (pad > 0) yield new Uint8Array(pad);
    } else {
      yield encodeHeader({ ...base, type });
    }
  }

  /** Everything under upper `rel` (a directory new to, or replacing a non-directory in, the lower). */
  async *#addTree(rel: string): AsyncGenerator<Uint8Array> {
    for (const name of (await names(this.#upper + rel)).sort(byteOrder)) {
      this.#signal?.throwIfAborted();
      const p = `${rel}/${name}`;
      const st = await Deno.lstat(this.#upper + p);
      yield* this.#entry(p, st);
      if (st.isDirectory) yield* this.#addTree(p);
    }
  }

  async *compare(rel: string): AsyncGenerator<Uint8Array> {
    const lowerNames = await names(this.#lower + rel);
    const upperNames = new Set(await names(this.#upper + rel));
    const all = [...new Set([...lowerNames, ...upperNames])].sort(byteOrder);
    for (const name of all) {
      this.#signal?.throwIfAborted();
      const p = `${rel}/${name}`;
      const u = upperNames.has(name) ? await lstatOrUndefined(this.#upper + p) : undefined;
      if (u === undefined) {
        const l = await Deno.lstat(this.#lower + p);
        yield encodeHeader({
          name: `${rel.slice(1)}${rel ? "/" : ""}.wh.${name}`,
          type: "file",
          mode: 0,
          uid: 0,
          gid: 0,
          size: 0,
          mtimeMs: l.mtime?.getTime() ?? 0,
        });
        continue;
      }
      const l = await lstatOrUndefined(this.#lower + p);
      if (l === undefined || kindOf(l) !== kindOf(u)) {
        yield* this.#entry(p, u);
        if (u.isDirectory) yield* this.#addTree(p);
      } else if (u.isDirectory) {
        if (await this.#changed(p, l, u)) yield* this.#entry(p, u);
        yield* this.compare(p);
      } else if (await this.#changed(p, l, u)) {
        yield* this.#entry(p, u);
      }
    }
  }
}

/**
 * The uncompressed tar of what `upper` changed relative to `lower` (both plain folders, e.g. mounted
 * snapshots): added and changed entries, whiteouts for removals, hard links kept.
 */
export async function* writeDiff(
  lower: string,
  upper: string,
  options: WriteDiffOptions = {},
): AsyncGenerator<Uint8Array> {
  yield* new DiffWalker(lower, upper, options).compare("");
  yield END_OF_ARCHIVE;
}
