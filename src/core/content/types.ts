import type { UnixNanos } from "../../base/clock.ts";

/** A blob as one namespace sees it. */
export interface Info {
  readonly digest: string;
  readonly size: number;
  readonly createdAt: UnixNanos;
  readonly updatedAt: UnixNanos;
  readonly labels: Readonly<Record<string, string>>;
}

/** The progress of an ingest (a write not yet committed), keyed by its ref. */
export interface Status {
  readonly ref: string;
  readonly offset: number;
  readonly total: number;
  /** The digest the latest writer of this ref declared when it opened, or "". */
  readonly expected: string;
  readonly startedAt: UnixNanos;
  readonly updatedAt: UnixNanos;
}

export interface CommitOptions {
  readonly labels?: Readonly<Record<string, string>>;
}

/**
 * One write transaction, holding its ref's lock until commit() or close(). Writes append at the
 * current offset; close() keeps the data so that a later writer on the same ref resumes it.
 * Calls must not overlap.
 */
export interface Writer {
  readonly ref: string;
  /**
   * Appends `data`. Once the promise settles the writer no longer reads `data` (Go's io.Writer rule):
   * a pull hands the same chunk on to the unpacker, which decrypts it in place.
   */
  write(data: Uint8Array): Promise<void>;
  /** Only truncate(0) is supported: it restarts the ingest. */
  truncate(size: number): Promise<void>;
  /** The digest of the bytes written so far. */
  digest(): string;
  status(): Status;
  /**
   * Verifies `size` (0: any) and `expected` ("": any), then moves the blob into the store. The writer
   * is finished afterwards, whether or not the commit succeeded.
   */
  commit(size: number, expected: string, options?: CommitOptions): Promise<Info>;
  close(): Promise<void>;
}

export interface WriterOptions {
  /** Expected total size, 0 or absent when unknown. */
  readonly total?: number;
  /** Expected digest; with it the writer refuses content the namespace already has. */
  readonly expected?: string;
  /**
   * A lease holds the ingest (the caller adds it to one): garbage collection takes it once no lease
   * does. An ingest no lease holds expires a day after its writer opened, as containerd's do.
   */
  readonly leased?: boolean;
}

/** Random access to one blob. */
export interface ReaderAt {
  readonly size: number;
  /** Reads into `buf` from `offset`; returns the bytes read, 0 at the end. */
  readAt(buf: Uint8Array, offset: number): Promise<number>;
  close(): void;
}
