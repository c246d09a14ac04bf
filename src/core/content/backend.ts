/**
 * Where a content store keeps its bytes: blobs by digest and ingests by name, knowing nothing of
 * namespaces, labels or who holds what (containerd's content.Store under its metadata store). The
 * ContentStore keeps those in the metadata database and drives one backend: the local folder, or a
 * `[proxy_plugins]` content store served by another process.
 */
import { failedPrecondition } from "../../base/errors.ts";
import type { ReaderAt, Status } from "./types.ts";

/** An ingest as the store names it to a backend: one namespace's ref. */
export interface IngestKey {
  readonly namespace: string;
  readonly ref: string;
}

export interface BackendWriterOptions {
  /** Expected total size, 0 when unknown. */
  readonly total: number;
  /** Expected digest, "" when unknown. */
  readonly expected: string;
  /** Drop whatever an earlier writer of the key left instead of resuming it. */
  readonly fresh?: boolean;
  /** Start the ingest over as a copy of this blob (a shared blob a namespace appends to). */
  readonly copyOf?: { readonly digest: string; readonly size: number };
}

/** A blob a backend writer has verified, ready to be recorded. */
export interface Committed {
  readonly digest: string;
  readonly size: number;
  /**
   * Puts the blob in place if the backend does not hold it yet. Called inside the metadata transaction
   * that records it, so no delete can run in between; a no-op where the commit already placed it.
   */
  place(): void;
}

/** One open ingest of a backend. Calls must not overlap. */
export interface BackendWriter {
  write(data: Uint8Array): Promise<void>;
  /** Only truncate(0) is supported: it restarts the ingest. */
  truncate(size: number): Promise<void>;
  /** The digest of the bytes written so far. */
  digest(): string;
  status(): Status;
  /** Verifies `size` (0: any) and `expected` ("": any); the writer is finished afterwards. */
  commit(size: number, expected: string): Promise<Committed>;
  /**
   * Drops what is left of the ingest after a commit (recorded or already present); false when it
   * would not go (it stays recorded, for an abort).
   */
  discard(): Promise<boolean>;
  /** Keeps the ingest, for a later writer of the same ref to resume. */
  close(): Promise<void>;
}

interface BackendBase {
  /** Where the bytes are, for messages. */
  readonly description: string;
  /** The size of the blob, or undefined when the backend does not hold it. */
  blobSize(digest: string): Promise<number | undefined>;
  /** Random access to a blob of `size` bytes (the size recorded when it was committed). */
  readerAt(digest: string, size: number): Promise<ReaderAt>;
  /** Opens the ingest, resuming what an earlier writer of the same key left. */
  writer(key: IngestKey, options: BackendWriterOptions): Promise<BackendWriter>;
  /** The ingest's progress, or undefined when there is none. */
  status(key: IngestKey): Promise<Status | undefined>;
  /** Drops the ingest; false when there was none. */
  abort(key: IngestKey): Promise<boolean>;
  close?(): void;
}

/**
 * A backend on this machine (the local folder): blobs and ingests go synchronously, inside the
 * metadata transaction that stops holding them, as garbage collection needs.
 */
export interface SyncContentBackend extends BackendBase {
  readonly kind: "sync";
  blobSizeSync(digest: string): number | undefined;
  deleteBlobSync(digest: string): void;
  abortSync(key: IngestKey): void;
  /**
   * The ingests it holds, to match the records against at start-up (only then: it removes the folders
   * that lack a namespace or ref, left by a crash while one was being made or removed).
   */
  ingestsSync(): IngestKey[];
}

/**
 * A backend behind a socket (a proxy plugin): what no namespace holds any longer is swept after the
 * metadata transaction, as containerd's metadata store sweeps its backend after a collection.
 */
export interface SweptContentBackend extends BackendBase {
  readonly kind: "swept";
  /**
   * Streams [offset, offset + size) in one call rather than one call per readAt; `size` 0 reads to the
   * end.
   */
  read(
    digest: string,
    options: { offset: number; size: number; signal?: AbortSignal },
  ): AsyncIterable<Uint8Array>;
  deleteBlob(digest: string): Promise<void>;
  /** Every blob it holds. */
  blobs(): Promise<string[]>;
  /** Every ingest it holds, by its name there, and the key it was opened under when this store named it. */
  ingests(): Promise<{ readonly name: string; readonly key?: IngestKey }[]>;
  /** Drops an ingest by its name there. */
  abortName(name: string): Promise<void>;
}

export type ContentBackend = SyncContentBackend | SweptContentBackend;

/** Refuses a commit whose size or digest is not the one the caller expects (0 and "": any). */
export function verifyCommit(
  ref: string,
  want: { size: number; expected: string },
  got: { size: number; digest: string },
): void {
  if (want.size > 0 && want.size !== got.size) {
    throw failedPrecondition(
      `Cannot commit ref ${ref}: size ${got.size} does not match the expected size ${want.size}`,
    );
  }
  if (want.expected !== "" && want.expected !== got.digest) {
    throw failedPrecondition(
      `Cannot commit ref ${ref}: digest ${got.digest} does not match the expected digest ${want.expected}`,
    );
  }
}
