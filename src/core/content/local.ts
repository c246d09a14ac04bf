import { joinPath } from "../../base/paths.ts";
import { now, type UnixNanos } from "../../base/clock.ts";
import { invalidArgument, notFound } from "../../base/errors.ts";
import { parseDigest } from "../../oci/digest.ts";
import {
  type BackendWriter,
  type BackendWriterOptions,
  type Committed,
  type IngestKey,
  type SyncContentBackend,
  verifyCommit,
} from "./backend.ts";
import { Digester } from "./digest.ts";
import { IngestDir, readIdentitySync, readStatus } from "./ingest.ts";
import type { ReaderAt, Status } from "./types.ts";

/** Blobs up to this size are read with synchronous calls (see readerAt). */
const SMALL_BLOB = 256 << 10;

const READ_CHUNK = 1 << 20;

/**
 * The content store's folder, as containerd's local store lays it out: blobs at `<root>/blobs/<alg>/<hex>`
 * (read-only once in place), ingests under `<root>/ingest/` (see IngestDir), written, verified, then
 * renamed into place.
 */
export class LocalContentBackend implements SyncContentBackend {
  readonly kind = "sync";
  readonly root: string;
  readonly #ingestRoot: string;

  constructor(root: string) {
    this.root = root;
    this.#ingestRoot = joinPath(root, "ingest");
    Deno.mkdirSync(this.#ingestRoot, { recursive: true });
    Deno.mkdirSync(joinPath(root, "blobs"), { recursive: true });
  }

  get description(): string {
    return this.root;
  }

  /** Where a blob lives on disk (whether or not it exists). */
  blobPath(digest: string): string {
    const { algorithm, encoded } = parseDigest(digest);
    return joinPath(this.root, "blobs", algorithm, encoded);
  }

  blobSizeSync(digest: string): number | undefined {
    return fileSize(this.blobPath(digest));
  }

  blobSize(digest: string): Promise<number | undefined> {
    return Promise.resolve().then(() => this.blobSizeSync(digest));
  }

  async readerAt(digest: string, size: number): Promise<ReaderAt> {
    // Manifests, indexes and configs are read on every run: for blobs this small a synchronous
    // open and read (page cache, microseconds) beat three round trips through the blocking pool.
    const small = size <= SMALL_BLOB;
    const path = this.blobPath(digest);
    let file: Deno.FsFile;
    try {
      file = small ? Deno.openSync(path, { read: true }) : await Deno.open(path, { read: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw notFound(`Content ${digest} is recorded but its blob is missing from ${this.root}`);
      }
      throw err;
    }
    let pos = 0;
    return {
      size,
      async readAt(buf, offset) {
        if (small) {
          if (offset !== pos) file.seekSync(offset, Deno.SeekMode.Start);
          const n = file.readSync(buf) ?? 0;
          pos = offset + n;
          return n;
        }
        if (offset !== pos) await file.seek(offset, Deno.SeekMode.Start);
        const n = (await file.read(buf)) ?? 0;
        pos = offset + n;
        return n;
      },
      close: () => file.close(),
    };
  }

  async writer(key: IngestKey, options: BackendWriterOptions): Promise<BackendWriter> {
    const w = new LocalIngestWriter(this, this.#dir(key));
    await w.open(options);
    return w;
  }

  /** Reads the ingest's folder; undefined while it is being created or removed, or when there is none. */
  async status(key: IngestKey): Promise<Status | undefined> {
    try {
      const { namespace: _, ...st } = await readStatus(this.#dir(key).path);
      return st;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound || (err as { kind?: string }).kind === "not_found") {
        return undefined;
      }
      throw err;
    }
  }

  async abort(key: IngestKey): Promise<boolean> {
    try {
      await this.#dir(key).remove();
      return true;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      throw err;
    }
  }

  deleteBlobSync(digest: string): void {
    try {
      Deno.removeSync(this.blobPath(digest));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }

  abortSync(key: IngestKey): void {
    try {
      Deno.removeSync(this.#dir(key).path, { recursive: true });
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }

  ingestsSync(): IngestKey[] {
    const out: IngestKey[] = [];
    for (const entry of Deno.readDirSync(this.#ingestRoot)) {
      if (!entry.isDirectory) continue;
      const path = joinPath(this.#ingestRoot, entry.name);
      const id = readIdentitySync(path);
      if (id !== undefined) out.push(id);
      // Cut off between its mkdir and its namespace and ref files (or in its removal): nobody can name
      // it to resume or abort it, and at start-up no writer is filling it.
      else Deno.removeSync(path, { recursive: true });
    }
    return out;
  }

  #dir(key: IngestKey): IngestDir {
    return new IngestDir(this.#ingestRoot, key.namespace, key.ref);
  }
}

/** A write into one ingest folder: its `data` file, hashed as it grows. */
class LocalIngestWriter implements BackendWriter {
  readonly #backend: LocalContentBackend;
  readonly #dir: IngestDir;
  #file: Deno.FsFile | undefined;
  #digester = new Digester();
  #offset = 0;
  #total = 0;
  #expected = "";
  #startedAt: UnixNanos = now();
  #updatedAt: UnixNanos = this.#startedAt;

  constructor(backend: LocalContentBackend, dir: IngestDir) {
    this.#backend = backend;
    this.#dir = dir;
  }

  /**
   * Opens the ingest, resuming its data (rehashed once) when a previous writer left some. A digest or
   * total this writer declares replaces the one recorded (a resumed pull may expect other content, as
   * containerd's service takes the latest expected digest); a total that contradicts the recorded one
   * starts the ingest over, as containerd's local store does.
   */
  async open(options: BackendWriterOptions): Promise<void> {
    const dir = this.#dir;
    const copyOf = options.copyOf;
    if (options.fresh || copyOf !== undefined) {
      await dir.remove().catch(() => {});
      if (copyOf !== undefined) {
        dir.create();
        dir.init({ startedAt: now(), total: copyOf.size, expected: "" });
        await Deno.copyFile(this.#backend.blobPath(copyOf.digest), dir.data);
      }
    }
    const { total, expected } = options;
    let resumed: Status | undefined;
    if (!dir.create()) {
      try {
        const st = await dir.status();
        if (st.ref !== dir.ref) throw new Error(`ref file says ${st.ref}`);
        if (total > 0 && st.total > 0 && total !== st.total) throw new Error(`total ${st.total} differs`);
        resumed = st;
      } catch {
        // A half-written or inconsistent ingest cannot be resumed safely: start it over.
        await dir.remove();
        dir.create();
      }
    }
    const startedAt = now();
    if (resumed === undefined) dir.init({ startedAt, total, expected });
    else {
      dir.declare({
        total: total !== resumed.total ? total : 0,
        expected: expected !== resumed.expected ? expected : "",
      });
    }
    this.#expected = expected || (resumed?.expected ?? "");
    this.#total = total || (resumed?.total ?? 0);
    this.#startedAt = resumed?.startedAt ?? startedAt;
    this.#updatedAt = resumed?.updatedAt ?? startedAt;
    this.#digester = new Digester(this.#expected ? parseDigest(this.#expected).algorithm : "sha256");
    const file = Deno.openSync(dir.data, { read: true, write: true });
    try {
      let offset = 0;
      if (resumed !== undefined) {
        const buf = new Uint8Array(READ_CHUNK);
        for (;;) {
          const n = await file.read(buf);
          if (n === null) break;
          this.#digester.update(buf.subarray(0, n));
          offset += n;
        }
      }
      file.seekSync(offset, Deno.SeekMode.Start);
      this.#offset = offset;
    } catch (err) {
      file.close();
      throw err;
    }
    this.#file = file;
  }

  async write(data: Uint8Array): Promise<void> {
    const file = this.#file!;
    for (let off = 0; off < data.length;) off += await file.write(data.subarray(off));
    this.#digester.update(data);
    this.#offset += data.length;
    this.#updatedAt = now();
  }

  async truncate(size: number): Promise<void> {
    if (size !== 0) {
      throw invalidArgument(`Cannot truncate ref ${this.#dir.ref} to ${size}: only 0 is supported`);
    }
    await this.#file!.truncate(0);
    await this.#file!.seek(0, Deno.SeekMode.Start);
    this.#digester.reset();
    this.#offset = 0;
    this.#updatedAt = now();
  }

  digest(): string {
    return this.#digester.digest();
  }

  status(): Status {
    return {
      ref: this.#dir.ref,
      offset: this.#offset,
      total: this.#total,
      expected: this.#expected,
      startedAt: this.#startedAt,
      updatedAt: this.#updatedAt,
    };
  }

  async commit(size: number, expected: string): Promise<Committed> {
    const file = this.#file!;
    this.#file = undefined;
    try {
      await file.syncData();
    } finally {
      file.close();
    }
    const data = this.#dir.data;
    let actualSize: number;
    try {
      actualSize = (await Deno.stat(data)).size;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) throw notFound(`Ingest ref ${this.#dir.ref} was aborted`);
      throw err;
    }
    let actual = this.#digester.digest();
    if (expected !== "" && parseDigest(expected).algorithm !== this.#digester.algorithm) {
      actual = await rehash(data, parseDigest(expected).algorithm);
    }
    verifyCommit(this.#dir.ref, { size, expected }, { size: actualSize, digest: actual });
    const path = this.#backend.blobPath(actual);
    return {
      digest: actual,
      size: actualSize,
      place() {
        if (fileSize(path) !== undefined) return;
        Deno.mkdirSync(joinPath(path, ".."), { recursive: true });
        Deno.chmodSync(data, 0o444);
        Deno.renameSync(data, path);
      },
    };
  }

  async discard(): Promise<boolean> {
    try {
      await this.#dir.remove();
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) return false;
    }
    return true;
  }

  async close(): Promise<void> {
    const file = this.#file;
    this.#file = undefined;
    if (file === undefined) return;
    try {
      await file.syncData();
    } finally {
      file.close();
    }
    await this.#dir.touch(this.#updatedAt).catch(() => {});
  }
}

async function rehash(path: string, algorithm: string): Promise<string> {
  const d = new Digester(algorithm);
  using file = await Deno.open(path);
  const buf = new Uint8Array(READ_CHUNK);
  for (;;) {
    const n = await file.read(buf);
    if (n === null) return d.digest();
    d.update(buf.subarray(0, n));
  }
}

function fileSize(path: string): number | undefined {
  try {
    return Deno.statSync(path).size;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}
