import { now, type UnixNanos } from "../../base/clock.ts";
import { failedPrecondition, invalidArgument, notFound } from "../../base/errors.ts";
import { parseDigest } from "../../oci/digest.ts";
import { Digester } from "./digest.ts";
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
  /**
   * Records that the namespace has an ingest `ref`: called before its folder is made. `leased`: a lease
   * holds it, so it has no expiry of its own.
   */
  recordIngest(namespace: string, ref: string, leased: boolean): void;
  /** Forgets the namespace's ingest `ref`: called after its folder is removed. */
  forgetIngest(namespace: string, ref: string): void;
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
  readonly #leased: boolean;
  #shared: SharedBlob | undefined;
  #file: Deno.FsFile | undefined;
  #digester = new Digester();
  #offset = 0;
  #total = 0;
  #expected = "";
  #startedAt: UnixNanos = now();
  #updatedAt: UnixNanos = this.#startedAt;
  #done = false;

  private constructor(host: WriterHost, namespace: string, ref: string, leased: boolean) {
    this.#host = host;
    this.namespace = namespace;
    this.ref = ref;
    this.#leased = leased;
    this.#dir = new IngestDir(host.ingestRoot, namespace, ref);
  }

  /** The ingest folder (the lock key). */
  get key(): string {
    return this.#dir.path;
  }

  /** Whether this writer has its ingest open (not finished, and not a shared blob without a copy). */
  get ingesting(): boolean {
    return this.#file !== undefined;
  }

  static create(
    host: WriterHost,
    namespace: string,
    ref: string,
    options: { leased?: boolean } = {},
  ): ContentWriter {
    return new ContentWriter(host, namespace, ref, options.leased ?? false);
  }

  /** Starts complete over a blob the store already has. */
  startShared(blob: SharedBlob): void {
    this.#shared = blob;
    this.#offset = blob.size;
    this.#total = blob.size;
    this.#expected = blob.digest;
  }

  /**
   * Opens the ingest, resuming its data (rehashed once) when a previous writer left some. A digest or
   * total this writer declares replaces the one recorded (a resumed pull may expect other content, as
   * containerd's service takes the latest expected digest); a total that contradicts the recorded one
   * starts the ingest over, as containerd's local store does.
   */
  async open(total: number, expected: string): Promise<void> {
    const dir = this.#dir;
    let resumed: Status | undefined;
    this.#host.recordIngest(this.namespace, this.ref, this.#leased);
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
    const startedAt = now();
    if (resumed === undefined) await dir.init({ startedAt, total, expected });
    else {
      await dir.declare({
        total: total !== resumed.total ? total : 0,
        expected: expected !== resumed.expected ? expected : "",
      });
    }
    this.#expected = expected || (resumed?.expected ?? "");
    this.#total = total || (resumed?.total ?? 0);
    this.#startedAt = resumed?.startedAt ?? startedAt;
    this.#updatedAt = resumed?.updatedAt ?? startedAt;
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
    this.#updatedAt = now();
  }

  async truncate(size: number): Promise<void> {
    this.#checkOpen();
    if (size !== 0) throw invalidArgument(`Cannot truncate ref ${this.ref} to ${size}: only 0 is supported`);
    if (this.#shared !== undefined) return await this.#unshare(false);
    await this.#file!.truncate(0);
    await this.#file!.seek(0, Deno.SeekMode.Start);
    this.#digester.reset();
    this.#offset = 0;
    this.#updatedAt = now();
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
        await this.#removeIngest(); // a stale ingest of this ref, if any
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
        await this.#removeIngest();
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

  /** Removes the ingest folder and its record; a folder that will not go stays recorded, for an abort. */
  async #removeIngest(): Promise<void> {
    try {
      await this.#dir.remove();
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) return;
    }
    this.#host.forgetIngest(this.namespace, this.ref);
  }

  async #unshare(copy: boolean): Promise<void> {
    const shared = this.#shared!;
    this.#host.recordIngest(this.namespace, this.ref, this.#leased);
    await this.#dir.remove().catch(() => {});
    await this.#dir.create();
    await this.#dir.init({ startedAt: now(), total: copy ? shared.size : 0, expected: "" });
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
