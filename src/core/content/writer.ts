import { now, type UnixNanos } from "../../base/clock.ts";
import { failedPrecondition, invalidArgument } from "../../base/errors.ts";
import { parseDigest } from "../../oci/digest.ts";
import { type BackendWriter, type BackendWriterOptions, verifyCommit } from "./backend.ts";
import { validateLabels } from "./labels.ts";
import type { CommitOptions, Info, Status, Writer } from "./types.ts";

/** What a writer needs from its store. */
export interface WriterHost {
  /** Records the writer's ingest, then opens it in the backend. */
  openIngest(writer: ContentWriter, options: BackendWriterOptions): Promise<BackendWriter>;
  /** Commits the ingest in the backend and records the blob in the writer's namespace. */
  commitIngest(
    writer: ContentWriter,
    ingest: BackendWriter,
    want: { size: number; expected: string },
    labels: Record<string, string>,
  ): Promise<Info>;
  /** Records a blob another namespace holds in the writer's namespace. */
  commitShared(writer: ContentWriter, blob: SharedBlob, labels: Record<string, string>): Promise<Info>;
  release(writer: ContentWriter): void;
}

/** A blob another namespace already holds: no bytes need to move unless the caller writes anyway. */
export interface SharedBlob {
  readonly digest: string;
  readonly size: number;
}

/**
 * One namespace's write transaction over a backend ingest, as containerd's metadata writer. In
 * "shared" mode (the expected blob already exists in another namespace) it starts complete and opens
 * no ingest, and only turns into a real one (a copy of the blob) if the caller writes or truncates.
 */
export class ContentWriter implements Writer {
  readonly namespace: string;
  readonly ref: string;
  /** The store's lock key. */
  readonly key: string;
  readonly leased: boolean;
  readonly #host: WriterHost;
  #shared: SharedBlob | undefined;
  #ingest: BackendWriter | undefined;
  readonly #startedAt: UnixNanos = now();
  #done = false;

  constructor(host: WriterHost, namespace: string, ref: string, options: { key: string; leased: boolean }) {
    this.#host = host;
    this.namespace = namespace;
    this.ref = ref;
    this.key = options.key;
    this.leased = options.leased;
  }

  /** Whether this writer has an ingest open (not finished, and not a shared blob without a copy). */
  get ingesting(): boolean {
    return this.#ingest !== undefined && !this.#done;
  }

  /** Starts complete over a blob the store already has. */
  startShared(blob: SharedBlob): void {
    this.#shared = blob;
  }

  /** Opens (or resumes) the backend's ingest. */
  async open(total: number, expected: string): Promise<void> {
    this.#ingest = await this.#host.openIngest(this, { total, expected });
  }

  write(data: Uint8Array): Promise<void> {
    // The ingest's own promise, not one more await per chunk: pulls write thousands of chunks.
    if (this.#ingest !== undefined && !this.#done) return this.#ingest.write(data);
    return this.#writeShared(data);
  }

  async truncate(size: number): Promise<void> {
    this.#checkOpen();
    if (size !== 0) throw invalidArgument(`Cannot truncate ref ${this.ref} to ${size}: only 0 is supported`);
    if (this.#shared !== undefined) return await this.#unshare(false);
    await this.#ingest!.truncate(0);
  }

  digest(): string {
    return this.#shared?.digest ?? this.#ingest!.digest();
  }

  status(): Status {
    const shared = this.#shared;
    if (shared === undefined) return this.#ingest!.status();
    return {
      ref: this.ref,
      offset: shared.size,
      total: shared.size,
      expected: shared.digest,
      startedAt: this.#startedAt,
      updatedAt: this.#startedAt,
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
        verifyCommit(this.ref, { size, expected }, shared);
        return await this.#host.commitShared(this, shared, labels);
      }
      // Kept: digest() and status() still answer for what was written.
      return await this.#host.commitIngest(this, this.#ingest!, { size, expected }, labels);
    } finally {
      this.#finish();
    }
  }

  async close(): Promise<void> {
    if (this.#done) return;
    try {
      await this.#ingest?.close();
    } finally {
      this.#finish();
    }
  }

  async #writeShared(data: Uint8Array): Promise<void> {
    this.#checkOpen();
    if (data.length === 0) return;
    await this.#unshare(true);
    await this.#ingest!.write(data);
  }

  /** Turns the shared blob into an ingest of this namespace: a copy of it, or empty (truncated). */
  async #unshare(copy: boolean): Promise<void> {
    const shared = this.#shared!;
    this.#ingest = await this.#host.openIngest(this, {
      total: copy ? shared.size : 0,
      expected: "",
      fresh: true,
      ...(copy ? { copyOf: shared } : {}),
    });
    this.#shared = undefined;
  }

  #checkOpen(): void {
    if (this.#done) throw failedPrecondition(`Writer for ref ${this.ref} is closed`);
  }

  #finish(): void {
    this.#done = true;
    this.#host.release(this);
  }
}
