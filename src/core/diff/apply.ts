/**
 * The layer applier: streams a (compressed) layer tar into a directory, converting OCI whiteouts for
 * the snapshotter that will mount the result, and verifying the uncompressed digest (the diff ID).
 */
import { streamHash } from "../../base/hash.ts";
import type { Readable } from "node:stream";
import type { ReadableStream as NodeWebReadableStream } from "node:stream/web";
// Types only: tar-stream itself is loaded on first use (~5 ms of every daemon start otherwise).
import type tar from "tar-stream";
import { BerthError, failedPrecondition, internal, invalidArgument } from "../../base/errors.ts";
import { type FsSyscalls, fsSyscalls, S_IFBLK, S_IFCHR, S_IFIFO } from "../../../ffi/fs.ts";
import { type Compression, layerCompression } from "./media_types.ts";
import { cleanEntryPath, resolveInRoot } from "./root_path.ts";
import { PaxXattrTracker, type RawXattrs } from "./pax_xattrs.ts";
import { encodeHeader, END_OF_ARCHIVE, padding, type TarHeader } from "./tar_writer.ts";
import { concatBytes } from "../../base/bytes.ts";

export interface ApplyOptions {
  /** Layer media type (OCI or Docker); decides the decompression. */
  readonly mediaType: string;
  /** "overlay": whiteouts become 0:0 char devices and opaque xattrs; "native": deletions. */
  readonly whiteouts: "overlay" | "native";
  /** When given, the uncompressed stream must hash to it (failedPrecondition otherwise). */
  readonly expectedDiffId?: string;
  readonly signal?: AbortSignal;
  readonly syscalls?: FsSyscalls;
}

export interface ApplyResult {
  /** "sha256:<hex>" of the uncompressed tar. */
  readonly diffId: string;
  /** Bytes of the uncompressed tar. */
  readonly size: number;
}

type Header = tar.Header;

const WHITEOUT_PREFIX = ".wh.";
const OPAQUE = ".wh..wh..opq";

/** node:zlib is loaded on the first compressed layer: it costs ~13 ms of every daemon start otherwise. */
async function decompressor(c: Compression): Promise<NodeJS.ReadWriteStream | undefined> {
  if (c === "none") return undefined;
  const zlib = await import("node:zlib");
  return c === "gzip" ? zlib.createGunzip() : zlib.createZstdDecompress();
}

/**
 * Loads what the first layer applied loads on its way (node:stream, node:zlib, tar-stream: ~25 ms of a
 * fresh daemon's first apply), one per event-loop turn, for a caller that knows layers are coming and has
 * time to spare before them.
 */
export async function prepareApply(): Promise<void> {
  process.getBuiltinModule("node:stream");
  await decompressor("gzip");
  await import("tar-stream");
}

/**
 * Applies a small layer in a temp folder of `scratch` (~20 ms of CPU), for a caller with that time idle
 * before a first layer: it otherwise runs the stream, gunzip, tar and writer code cold (a 1 MB busybox
 * layer, measured: 41-68 ms as a process's first apply, 17-20 ms later, 27-29 ms first after this).
 */
export async function rehearseApply(scratch: string): Promise<void> {
  await prepareApply();
  const dir = await Deno.makeTempDir({ dir: scratch, prefix: REHEARSAL_PREFIX });
  try {
    const { gzipSync } = process.getBuiltinModule("node:zlib");
    await applyLayer(ReadableStream.from([gzipSync(rehearsalLayer())]), dir, {
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      whiteouts: "native",
    });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Removes the temp folders of rehearsals cut off by a killed daemon (never mounts, so safe to remove
 * whole), at start-up; returns how many there were.
 */
export function removeStaleRehearsals(scratch: string): number {
  let removed = 0;
  try {
    for (const e of Deno.readDirSync(scratch)) {
      if (!e.name.startsWith(REHEARSAL_PREFIX)) continue;
      Deno.removeSync(`${scratch}/${e.name}`, { recursive: true });
      removed++;
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return removed;
}

/** The prefix of rehearseApply's temp folders. */
const REHEARSAL_PREFIX = "apply-rehearsal-";

/** A layer with one entry of each common kind, and a file of several chunks. */
function rehearsalLayer(): Uint8Array {
  const mtimeMs = 0;
  const data = new Uint8Array(96 * 1024).map((_, i) => i % 251);
  const entries: [TarHeader, Uint8Array?][] = [
    [{ name: "r/", type: "directory", mode: 0o755, uid: 0, gid: 0, mtimeMs }],
    [{ name: "r/f", type: "file", mode: 0o644, uid: 0, gid: 0, size: data.length, mtimeMs }, data],
    [{ name: "r/l", type: "symlink", linkname: "f", mode: 0o777, uid: 0, gid: 0, mtimeMs }],
    [{ name: "r/h", type: "link", linkname: "r/f", mode: 0o644, uid: 0, gid: 0, mtimeMs }],
    [{ name: "r/.wh.gone", type: "file", mode: 0o644, uid: 0, gid: 0, size: 0, mtimeMs }],
  ];
  return concatBytes([
    ...entries.flatMap(([h, body]) =>
      body ? [encodeHeader(h), body, new Uint8Array(padding(body.length))] : [encodeHeader(h)]
    ),
    END_OF_ARCHIVE,
  ]);
}

/** Marks errors of the decompressor so they are told apart from tar format errors. */
class DecompressError extends Error {}

/** An error met while reading an entry's data: a stream error, not a file-system one. */
class BodyError extends Error {}

async function* guarded(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  try {
    yield* body;
  } catch (err) {
    throw new BodyError((err as Error).message, { cause: err });
  }
}

/** Applies `stream` (a layer blob) onto `root` and returns its diff ID and uncompressed size. */
export async function applyLayer(
  stream: ReadableStream<Uint8Array>,
  root: string,
  options: ApplyOptions,
): Promise<ApplyResult> {
  const compression = layerCompression(options.mediaType);
  options.signal?.throwIfAborted();
  // node:stream loads with the first layer, not at the daemon's start (it brings node's compatibility
  // layer); synchronously, so the stream is taken in the same turn as before.
  const { Readable } = process.getBuiltinModule("node:stream");
  const source = Readable.fromWeb(stream as unknown as NodeWebReadableStream<Uint8Array>);
  const dec = await decompressor(compression);
  const plain: Readable = dec
    ? (source.pipe(dec as unknown as NodeJS.WritableStream) as unknown as Readable)
    : source;
  if (dec) source.on("error", (err) => (dec as unknown as Readable).destroy(err));
  const extract = (await import("tar-stream")).default.extract();
  const hash = streamHash("sha256");
  const paxXattrs = new PaxXattrTracker();
  let size = 0;
  const onAbort = () => plain.destroy(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });

  // Ends the feeder's waits when the consumer gives up (extract may already be closed by then).
  const stop = new AbortController();
  const feed = async () => {
    try {
      for await (const chunk of plain) {
        const bytes = chunk as Uint8Array;
        hash.update(bytes);
        size += bytes.length;
        paxXattrs.push(bytes);
        if (!extract.write(bytes)) await drained(extract, stop.signal);
        if (stop.signal.aborted || extract.destroyed) return;
      }
      extract.end(null);
    } catch (err) {
      // Errors of the blob source itself (e.g. notFound from the content store) pass through as they are.
      extract.destroy(
        options.signal?.aborted || err instanceof BerthError ? err as Error : new DecompressError(
          compression === "none"
            ? `Cannot read layer: ${(err as Error).message}`
            : `Cannot decompress layer (${compression}): ${(err as Error).message}`,
        ),
      );
    }
  };

  // The extract stream's own error says more than the "destroyed" its entries report.
  let streamError: unknown;
  extract.on("error", (err: unknown) => (streamError ??= err));
  const writer = new LayerWriter(root, options);
  let feeding: Promise<void> | undefined;
  try {
    feeding = feed();
    for await (const entry of extract) {
      options.signal?.throwIfAborted();
      await writer.entry(entry.header, guarded(entry as AsyncIterable<Uint8Array>), paxXattrs.next());
    }
    await feeding;
    writer.finish();
  } catch (err) {
    stop.abort();
    plain.destroy();
    source.destroy();
    extract.destroy();
    await feeding?.catch(() => {});
    if (options.signal?.aborted) throw options.signal.reason;
    if (err instanceof BerthError) throw err;
    const cause = streamError ?? (err instanceof BodyError ? err.cause : err);
    if (cause instanceof BerthError) throw cause;
    if (cause instanceof DecompressError) throw invalidArgument(cause.message);
    throw invalidArgument(`Cannot read layer tar: ${(cause as Error).message}`);
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
  }
  const diffId = `sha256:${hash.hex()}`;
  if (options.expectedDiffId !== undefined && options.expectedDiffId !== diffId) {
    throw failedPrecondition(`Layer diff ID mismatch: expected ${options.expectedDiffId}, got ${diffId}`);
  }
  return { diffId, size };
}

interface Drainable {
  readonly destroyed: boolean;
  on(e: string, f: () => void): unknown;
  off(e: string, f: () => void): unknown;
}

/** Resolves when `w` wants more data, is gone, or `stop` fires. */
function drained(w: Drainable, stop: AbortSignal) {
  return new Promise<void>((resolve) => {
    if (w.destroyed || stop.aborted) return resolve();
    const done = () => {
      w.off("drain", done);
      w.off("close", done);
      stop.removeEventListener("abort", done);
      resolve();
    };
    w.on("drain", done);
    w.on("close", done);
    stop.addEventListener("abort", done);
  });
}

function writeAll(file: Deno.FsFile, data: Uint8Array): void {
  for (let off = 0; off < data.length;) off += file.writeSync(data.subarray(off));
}

/** The entry's xattrs: raw bytes from the tracker, else (should it have lost track) tar-stream's strings. */
function xattrsOf(header: Header, raw: RawXattrs | undefined): [string, Uint8Array][] {
  const pax = header.pax as Record<string, string> | undefined | null;
  const names = Object.keys(pax ?? {}).filter((k) => k.startsWith("SCHILY.xattr.")).sort();
  // The raw values are used only when they are for the same names tar-stream saw on this entry.
  if (raw && names.join("\0") === [...raw.keys()].map((k) => `SCHILY.xattr.${k}`).sort().join("\0")) {
    return [...raw];
  }
  if (!pax) return [];
  const out: [string, Uint8Array][] = [];
  const enc = new TextEncoder();
  for (const [k, v] of Object.entries(pax)) {
    if (k.startsWith("SCHILY.xattr.")) out.push([k.slice("SCHILY.xattr.".length), enc.encode(v)]);
  }
  return out;
}

/** Per-layer unpacking state: resolved parents, paths this layer created, dir times to fix up. */
class LayerWriter {
  readonly #root: string;
  readonly #sys: FsSyscalls;
  readonly #whiteouts: "overlay" | "native";
  readonly #parents = new Map<string, string>();
  readonly #unpacked = new Set<string>();
  readonly #dirTimes: [string, number][] = [];

  constructor(root: string, options: ApplyOptions) {
    this.#root = root;
    this.#sys = options.syscalls ?? fsSyscalls();
    this.#whiteouts = options.whiteouts;
  }

  #parentOf(components: readonly string[]): string {
    const key = components.join("/");
    let dir = this.#parents.get(key);
    if (dir === undefined) {
      dir = resolveInRoot(this.#root, components);
      // A missing parent is created, as tar does: layers may omit directory entries.
      Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
      if (!Deno.statSync(dir).isDirectory) {
        throw invalidArgument(`Layer entry parent "${key}" is not a directory`);
      }
      this.#parents.set(key, dir);
    }
    return dir;
  }

  async entry(header: Header, body: AsyncIterable<Uint8Array>, xattrs: RawXattrs | undefined): Promise<void> {
    const drain = async () => {
      for await (const _ of body) { /* skip the data */ }
    };
    const comps = cleanEntryPath(header.name);
    const base = comps.at(-1);
    try {
      if (base === undefined) {
        // "./": the root itself; only its metadata can change.
        await drain();
        if (header.type === "directory") this.#meta(this.#root, header, xattrs);
        return;
      }
      const parent = this.#parentOf(comps.slice(0, -1));
      const path = `${parent}/${base}`;
      if (base.startsWith(WHITEOUT_PREFIX)) {
        await drain();
        this.#whiteout(parent, base, header);
        return;
      }
      await this.#create(path, header, body);
      await drain();
      this.#unpacked.add(path);
      if (header.type !== "link") this.#meta(path, header, xattrs);
    } catch (err) {
      if (err instanceof BerthError || err instanceof BodyError) throw err;
      throw internal(`Cannot unpack layer entry "${header.name}": ${(err as Error).message}`, { cause: err });
    }
  }

  #whiteout(parent: string, base: string, header: Header): void {
    if (base === OPAQUE) {
      if (this.#whiteouts === "overlay") {
        this.#sys.lsetxattr(parent, "trusted.overlay.opaque", new TextEncoder().encode("y"));
      } else {
        this.#emptyExceptUnpacked(parent);
      }
      return;
    }
    // Other ".wh..wh." names are aufs bookkeeping (hard-link plinks): nothing to apply.
    if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return;
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === "" || name === "." || name === "..") {
      throw invalidArgument(`Layer whiteout "${header.name}" is invalid`);
    }
    const target = `${parent}/${name}`;
    this.#removeExisting(target);
    if (this.#whiteouts === "overlay") {
      this.#sys.mknod(target, S_IFCHR, 0, 0);
      this.#sys.lchown(target, header.uid ?? 0, header.gid ?? 0);
    }
  }

  #emptyExceptUnpacked(dir: string): void {
    for (const e of Deno.readDirSync(dir)) {
      const p = `${dir}/${e.name}`;
      if (!this.#unpacked.has(p)) {
        Deno.removeSync(p, { recursive: true });
        this.#parents.clear();
      } else if (e.isDirectory && !e.isSymlink) {
        this.#emptyExceptUnpacked(p);
      }
    }
  }

  #removeExisting(path: string): boolean {
    try {
      const st = Deno.lstatSync(path);
      Deno.removeSync(path, { recursive: st.isDirectory });
      // A removed directory or symlink may have been a cached parent.
      this.#parents.clear();
      return true;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      throw err;
    }
  }

  async #create(path: string, header: Header, body: AsyncIterable<Uint8Array>): Promise<void> {
    let existing: Deno.FileInfo | undefined;
    try {
      existing = Deno.lstatSync(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (existing && !(existing.isDirectory && header.type === "directory")) this.#removeExisting(path);
    const perm = (header.mode ?? 0o644) & 0o7777;
    switch (header.type) {
      case "directory":
        if (!existing?.isDirectory) Deno.mkdirSync(path, { mode: 0o700 });
        return;
      case "file":
      case "contiguous-file":
      case undefined: {
        // Synchronous writes: the data is already in memory and an async op per chunk costs more
        // than the write itself.
        const file = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
        try {
          for await (const chunk of body) writeAll(file, chunk);
        } finally {
          file.close();
        }
        return;
      }
      case "symlink":
        Deno.symlinkSync(header.linkname ?? "", path);
        this.#parents.clear();
        return;
      case "link": {
        const comps = cleanEntryPath(header.linkname ?? "", `Hard link target of "${header.name}"`);
        const base = comps.at(-1);
        if (base === undefined) throw invalidArgument(`Hard link "${header.name}" points at the root`);
        const target = `${resolveInRoot(this.#root, comps.slice(0, -1))}/${base}`;
        try {
          Deno.lstatSync(target);
        } catch {
          throw invalidArgument(
            `Hard link "${header.name}" points at "${header.linkname}", which does not exist`,
          );
        }
        Deno.linkSync(target, path);
        return;
      }
      case "character-device":
        return this.#sys.mknod(path, S_IFCHR | perm, header.devmajor ?? 0, header.devminor ?? 0);
      case "block-device":
        return this.#sys.mknod(path, S_IFBLK | perm, header.devmajor ?? 0, header.devminor ?? 0);
      case "fifo":
        return this.#sys.mknod(path, S_IFIFO | perm, 0, 0);
      default:
        throw invalidArgument(`Layer entry "${header.name}" has unsupported type "${header.type}"`);
    }
  }

  #meta(path: string, header: Header, xattrs: RawXattrs | undefined): void {
    // chown clears setuid bits and file capabilities, so it comes first.
    this.#sys.lchown(path, header.uid ?? 0, header.gid ?? 0);
    if (header.type !== "symlink") Deno.chmodSync(path, (header.mode ?? 0o644) & 0o7777);
    for (const [name, value] of xattrsOf(header, xattrs)) this.#sys.lsetxattr(path, name, value);
    const mtime = header.mtime?.getTime() ?? 0;
    if (header.type === "directory") this.#dirTimes.push([path, mtime]);
    else this.#sys.lutimes(path, mtime, mtime);
  }

  /** Directory times last: creating entries inside a directory changes its mtime. */
  finish(): void {
    for (const [path, mtime] of this.#dirTimes.reverse()) {
      try {
        this.#sys.lutimes(path, mtime, mtime);
      } catch { /* removed by a later whiteout */ }
    }
  }
}
