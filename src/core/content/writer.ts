import { failedPrecondition, invalidArgument, notFound } from "../errdefs/mod.ts";
import { Digester, parseDigest } from "./digest.ts";
import { IngestDir } from "./ingest.ts";
import { validateLabels } from "./labels.ts";
import type { CommitOptions, Info, Status, Writer } from "./types.ts";

/** What a writer needs from its store. */
export interface WriterHost {
  readonly ingestRoot: string;
  blobPath(digest: string): string;
  /**
   * Records `digest` in `namespace`, first moving `data` (the verified ingest file) into the blob store
   * when given. Synchronous, so that no delete can interleave between the file and the row.
   */
  commitBlob(
    namespace: string,
    blob: { digest: string; size: number; data?: string },
    labels: Record<string, string>,
  ): Info;
  release(writer: ContentWriter): void;
}

/** A blob another namespace already holds: no bytes need to move unless the caller writes anyway. */
export interface SharedBlob {
  readonly digest: string;
  readonly size: number;
}

const READ_CHUNK = 1 << 20;

/**
 * A write transaction over an ingest folder. In "shared" mode (the expected blob already exists in
 * another namespace) it starts complete, as containerd's metadata writer does, and only turns into a
 * real ingest (a copy of the blob) if the caller writes or truncates.
 */
export class ContentWriter implements Writer {
  readonly namespace: string;
  readonly ref: string;
  readonly #host: WriterHost;
  readonly #dir: IngestDir;
  #shared: SharedBlob | undefined;
  #file: Deno.FsFile | undefined;
  #digester = new Digester();
  #offset = 0;
  #total = 0;
  #expected = "";
  #startedAt = new Date();
  #updatedAt = this.#startedAt;
  #done = false;

  private constructor(host: WriterHost, namespace: string, ref: string) {
    this.#host = host;
    this.namespace = namespace;
    this.ref = ref;
    this.#dir = new IngestDir(host.ingestRoot, namespace, ref);
  }

  /** The ingest folder (the lock key). */
  get key(): string {
    return this.#dir.path;
  }

  static create(
    host: WriterHost,
    namespace: string,
    ref: string,
  ): ContentWriter {
    return new ContentWriter(host, namespace, ref);
  }

  /** Starts complete over a blob the store already has. */
  startShared(blob: SharedBlob): void {
    this.#shared = blob;
    this.#offset = blob.size;
    this.#total = blob.size;
    this.#expected = blob.digest;
  }

  /** Opens the ingest, resuming its data (rehashed once) when a previous writer left some. */
  async open(total: number, expected: string): Promise<void> {
    const dir = this.#dir;
    let resumed: Status | undefined;
    if (!(await dir.create())) {
      try {
        const st = await dir.status();
        if (st.ref !== this.ref) throw new Error(`ref file says ${st.ref}`);
        if (total > 0 && st.total > 0 && total !== st.total) throw new Error(`total ${st.total} differs`);
        resumed = st;
      } catch {
        // A half-written or inconsistent ingest cannot be resumed safely: start it over.
        await dir.remove();
        await dir.create();
      }
    }
    const now = new Date();
    if (resumed === undefined) await dir.init({ startedAt: now, total, expected });
    this.#expected = resumed?.expected || expected;
    this.#total = resumed?.total || total;
    this.#startedAt = resumed?.startedAt ?? now;
    this.#updatedAt = resumed?.updatedAt ?? now;
    this.#digester = new Digester(this.#expected ? parseDigest(this.#expected).algorithm : "sha256");
    const file = await Deno.open(dir.data, { read: true, write: true });
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
      await file.seek(offset, Deno.SeekMode.Start);
      this.#offset = offset;
    } catch (err) {
      file.close();
      throw err;
    }
    this.#file = file;
  }

  async write(data: Uint8Array): Promise<void> {
    this.#checkOpen();
    if (this.#shared !== undefined) {
      if (data.length === 0) return;
      await this.#unshare(true);
    }
    const file = this.#file!;
    for (let off = 0; off < data.length;) off += await file.write(data.subarray(off));
    this.#digester.update(data);
    this.#offset += data.length;
    this.#updatedAt = new Date();
  }

  async truncate(size: number): Promise<void> {
    this.#checkOpen();
    if (size !== 0) throw invalidArgument(`Cannot truncate ref ${this.ref} to ${size}: only 0 is supported`);
    if (this.#shared !== undefined) return await this.#unshare(false);
    await this.#file!.truncate(0);
    await this.#file!.seek(0, Deno.SeekMode.Start);
    this.#digester.reset();
    this.#offset = 0;
    this.#updatedAt = new Date();
  }

  digest(): string {
    return this.#shared?.digest ?? this.#digester.digest();
  }

  status(): Status {
    return {
      ref: this.ref,
      offset: this.#offset,
      total: this.#total,
      expected: this.#expected,
      startedAt: this.#startedAt,
      updatedAt: this.#updatedAt,
    };
  }

  async commit(size: number, expected: string, options: CommitOptions = {}): Promise<Info> {
    this.#checkOpen();
    const labels = { ...options.labels };
    try {
      validateLabels(labels);
      if (expected !== "") parseDigest(expected);
      const shared = this.#shared;
      if (shared !== undefined) {
        this.#verify(size, shared.size, expected, shared.digest);
        const info = this.#host.commitBlob(this.namespace, shared, labels);
        await this.#dir.remove().catch(() => {}); // a stale ingest of this ref, if any
        return info;
      }
      const file = this.#file!;
      this.#file = undefined;
      try {
        await file.syncData();
      } finally {
        file.close();
      }
      let actualSize: number;
      try {
        actualSize = (await Deno.stat(this.#dir.data)).size;
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) throw notFound(`Ingest ref ${this.ref} was aborted`);
        throw err;
      }
      let actual = this.#digester.digest();
      if (expected !== "" && parseDigest(expected).algorithm !== this.#digester.algorithm) {
        actual = await rehash(this.#dir.data, parseDigest(expected).algorithm);
      }
      this.#verify(size, actualSize, expected, actual);
      try {
        return this.#host.commitBlob(this.namespace, {
          digest: actual,
          size: actualSize,
          data: this.#dir.data,
        }, labels);
      } finally {
        // Committed or already present: either way this ingest has served its purpose.
        await this.#dir.remove().catch(() => {});
      }
    } finally {
      this.#finish();
    }
  }

  async close(): Promise<void> {
    if (this.#done) return;
    const file = this.#file;
    this.#file = undefined;
    try {
      if (file !== undefined) {
        try {
          await file.syncData();
        } finally {
          file.close();
        }
        await this.#dir.touch(this.#updatedAt).catch(() => {});
      }
    } finally {
      this.#finish();
    }
  }

  #verify(size: number, actualSize: number, expected: string, actual: string): void {
    if (size > 0 && size !== actualSize) {
      throw failedPrecondition(
        `Cannot commit ref ${this.ref}: size ${actualSize} does not match the expected size ${size}`,
      );
    }
    if (expected !== "" && expected !== actual) {
      throw failedPrecondition(
        `Cannot commit ref ${this.ref}: digest ${actual} does not match the expected digest ${expected}`,
      );
    }
  }

  async #unshare(copy: boolean): Promise<void> {
    const shared = this.#shared!;
    await this.#dir.remove().catch(() => {});
    await this.#dir.create();
    await this.#dir.init({ startedAt: new Date(), total: copy ? shared.size : 0, expected: "" });
    if (copy) await Deno.copyFile(this.#host.blobPath(shared.digest), this.#dir.data);
    this.#shared = undefined;
    await this.open(copy ? shared.size : 0, "");
  }

  #checkOpen(): void {
    if (this.#done) throw failedPrecondition(`Writer for ref ${this.ref} is closed`);
  }

  #finish(): void {
    this.#done = true;
    this.#host.release(this);
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
