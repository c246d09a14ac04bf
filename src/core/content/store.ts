import { now, type UnixNanos } from "../../base/clock.ts";
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from "../../base/errors.ts";
import { type Adaptor, labelsAdaptor, objectAdaptor, parseFilters } from "../filters/mod.ts";
import type { MetadataDB } from "../metadata/db.ts";
import { parseDigest } from "../../oci/digest.ts";
import type {
  BackendWriter,
  BackendWriterOptions,
  Committed,
  ContentBackend,
  IngestKey,
  SyncContentBackend,
} from "./backend.ts";
import { applyLabelPaths, validateLabels } from "./labels.ts";
import { LocalContentBackend } from "./local.ts";
import { RefLocks, SweepGate } from "./locks.ts";
import type { Info, ReaderAt, Status, Writer, WriterOptions } from "./types.ts";
import { ContentWriter, type SharedBlob, type WriterHost } from "./writer.ts";

/** The schema steps, appended and never edited: the first n are the schema a database at version n has. */
export const MIGRATIONS = [
  `CREATE TABLE content_blobs (
     namespace TEXT NOT NULL,
     digest TEXT NOT NULL,
     size INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     labels TEXT NOT NULL DEFAULT '{}',
     PRIMARY KEY (namespace, digest)
   ) WITHOUT ROWID;
   CREATE INDEX content_blobs_by_digest ON content_blobs (digest);`,
  // Times were Date.now() milliseconds; they become nanoseconds, as containerd keeps them.
  `ALTER TABLE content_blobs RENAME COLUMN created_at TO created_ns;
   ALTER TABLE content_blobs RENAME COLUMN updated_at TO updated_ns;
   UPDATE content_blobs SET created_ns = created_ns * 1000000, updated_ns = updated_ns * 1000000;`,
  // Which namespace has which ingest (the data stays in its folder), as containerd's ingests bucket:
  // an ingest makes its namespace exist, and keeps it from being deleted.
  `CREATE TABLE content_ingests (
     namespace TEXT NOT NULL,
     ref TEXT NOT NULL,
     PRIMARY KEY (namespace, ref)
   ) WITHOUT ROWID;`,
  // When an ingest no lease holds may be collected (NULL: a lease holds it, collected once none does);
  // ingests of an older database get a day from now.
  `ALTER TABLE content_ingests ADD COLUMN expires_ns INTEGER;
   UPDATE content_ingests SET expires_ns = (CAST(strftime('%s', 'now') AS INTEGER) + 86400) * 1000000000;`,
];

/** How long an ingest that no lease holds is kept after its writer opened: containerd's day. */
const UNLEASED_INGEST_TTL_NS = 24n * 3600n * 1_000_000_000n;

/** An ingest as garbage collection sees it. */
export interface IngestRecord {
  readonly ref: string;
  /** When it may be collected if no lease holds it; undefined: as soon as no lease does. */
  readonly expiresAt?: UnixNanos;
  /** A writer of this process has it open. */
  readonly writing: boolean;
}

interface Row {
  digest: string;
  size: bigint;
  created_ns: bigint;
  updated_ns: bigint;
  labels: string;
}

const COLUMNS = "digest, size, created_ns, updated_ns, labels";

/** How long a new writer waits for a ref another writer holds: containerd retries for about as long. */
const LOCK_WAIT_MS = 1000;

export interface ContentStoreOptions {
  /**
   * "shared" (containerd's default): a writer expecting a blob that another namespace holds is complete
   * at once, so namespaces do not pull the same content twice. "isolated": every namespace writes its
   * own bytes (still stored once on disk).
   */
  readonly sharing?: "shared" | "isolated";
  /** How long writer() waits for a ref held by another writer before it fails (1 s by default). */
  readonly lockWaitMs?: number;
}

export interface ReadOptions {
  readonly offset?: number;
  /** Bytes to read; 0 or absent reads to the end. */
  readonly size?: number;
  /** Largest chunk yielded, 1 MiB by default. */
  readonly chunkSize?: number;
  readonly signal?: AbortSignal;
}

/** Adapts an Info to containerd's content filter fields: digest, labels. */
export function adaptInfo(info: Info): Adaptor {
  return objectAdaptor({ digest: info.digest, labels: labelsAdaptor(info.labels) });
}

/**
 * containerd's content store as its metadata layer keeps it: a namespaced table says which namespace
 * holds which blob (size, times, labels) and which has which ingest, while the bytes are the
 * backend's, stored once whoever holds them: the local folder (LocalContentBackend) unless a
 * `[proxy_plugins]` content store serves them (RemoteContentBackend).
 */
export class ContentStore {
  readonly #backend: ContentBackend;
  readonly #db: MetadataDB;
  readonly #sharing: "shared" | "isolated";
  readonly #locks = new RefLocks<ContentWriter>();
  readonly #lockWaitMs: number;
  readonly #host: WriterHost;
  readonly #gate = new SweepGate();
  /** A swept backend may hold what no namespace does (set by deletes and aborts, cleared by a sweep). */
  #unswept = false;

  /** `backend`: a folder path for the local backend there, or another backend. */
  constructor(backend: string | ContentBackend, db: MetadataDB, options: ContentStoreOptions = {}) {
    this.#backend = typeof backend === "string" ? new LocalContentBackend(backend) : backend;
    this.#db = db;
    this.#sharing = options.sharing ?? "shared";
    this.#lockWaitMs = options.lockWaitMs ?? LOCK_WAIT_MS;
    db.migrate("content", MIGRATIONS);
    this.#host = {
      openIngest: (w, opts) => this.#openIngest(w, opts),
      commitIngest: (w, ingest, want, labels) => this.#commitIngest(w, ingest, want, labels),
      commitShared: (w, blob, labels) => this.#commitShared(w, blob, labels),
      release: (w) => this.#locks.release(w.key, w),
    };
    if (this.#backend.kind === "sync") this.#reconcileIngests(this.#backend);
  }

  /** Where the bytes are. */
  get backend(): ContentBackend {
    return this.#backend;
  }

  info(ns: string, digest: string): Promise<Info> {
    return Promise.resolve().then(() => this.#info(ns, digest));
  }

  /**
   * Updates the mutable fields (labels) of a blob's info. `fieldpaths` are "labels" or "labels.<key>";
   * without any, all labels are replaced.
   */
  update(
    ns: string,
    info: Pick<Info, "digest" | "labels">,
    options: { fieldpaths?: readonly string[] } = {},
  ): Promise<Info> {
    return Promise.resolve().then(() =>
      this.#db.tx(() => {
        const current = this.#info(ns, info.digest);
        let labels: Record<string, string> = { ...current.labels };
        const paths = options.fieldpaths?.length ? options.fieldpaths : ["labels"];
        for (const path of paths) {
          const next = applyLabelPaths(labels, info.labels, path);
          if (next === undefined) {
            throw invalidArgument(`Cannot update field ${JSON.stringify(path)} on content ${info.digest}`);
          }
          labels = next;
        }
        labels = dropEmpty(labels);
        validateLabels(labels);
        const updatedAt = now();
        this.#db.sql.prepare(
          "UPDATE content_blobs SET labels = ?, updated_ns = ? WHERE namespace = ? AND digest = ?",
        ).run(JSON.stringify(labels), updatedAt, ns, info.digest);
        return { ...current, labels, updatedAt };
      })
    );
  }

  /** The infos of a namespace's blobs that match `filters` (containerd syntax: digest, labels.*). */
  walk(ns: string, options: { filters?: readonly string[] } = {}): Promise<Info[]> {
    return Promise.resolve().then(() => this.walkSync(ns, options));
  }

  /** walk() without yielding, for the garbage collector's transaction. */
  walkSync(ns: string, options: { filters?: readonly string[] } = {}): Info[] {
    const filter = parseFilters(options.filters ?? []);
    const rows = this.#db.prepareBigInts(
      `SELECT ${COLUMNS} FROM content_blobs WHERE namespace = ? ORDER BY digest`,
    ).all(ns) as unknown as Row[];
    return rows.map(toInfo).filter((info) => filter.match(adaptInfo(info)));
  }

  /**
   * Removes the blob from the namespace, and from the backend once no namespace holds it: the local
   * folder's at once, a remote's at the next sweep.
   */
  delete(ns: string, digest: string): Promise<void> {
    return Promise.resolve().then(() => this.deleteSync(ns, digest));
  }

  /** delete() without yielding, for the garbage collector's transaction. */
  deleteSync(ns: string, digest: string): void {
    this.#db.tx(() => {
      const res = this.#db.sql.prepare("DELETE FROM content_blobs WHERE namespace = ? AND digest = ?").run(
        ns,
        digest,
      );
      if (res.changes === 0) throw notFound(`Content ${digest} not found in namespace ${ns}`);
      this.#db.markDirty();
      if (this.#heldAnywhere(digest)) return;
      if (this.#backend.kind === "sync") this.#backend.deleteBlobSync(digest);
      else this.#unswept = true;
    });
  }

  /** Random access to a blob the namespace holds. */
  readerAt(ns: string, digest: string): Promise<ReaderAt> {
    let info: Info;
    try {
      info = this.#info(ns, digest);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#backend.readerAt(digest, info.size);
  }

  /**
   * Streams a blob (or the range `offset`, `size`) in chunks of at most `chunkSize` bytes. A range past
   * the end is cut at the end; an offset past the end is invalid.
   */
  async *read(ns: string, digest: string, options: ReadOptions = {}): AsyncGenerator<Uint8Array> {
    const info = this.#info(ns, digest);
    const offset = Math.max(0, options.offset ?? 0);
    if (offset > info.size) {
      throw invalidArgument(`Cannot read content ${digest} at ${offset}: past its ${info.size} bytes`);
    }
    const size = options.size && options.size > 0
      ? Math.min(options.size, info.size - offset)
      : info.size - offset;
    const chunk = options.chunkSize ?? 1 << 20;
    if (this.#backend.kind === "swept") {
      if (size === 0) return;
      for await (const data of this.#backend.read(digest, { offset, size, signal: options.signal })) {
        for (let at = 0; at < data.length; at += chunk) yield data.subarray(at, at + chunk);
      }
      return;
    }
    const ra = await this.#backend.readerAt(digest, info.size);
    try {
      let left = size;
      let at = offset;
      while (left > 0) {
        options.signal?.throwIfAborted();
        const buf = new Uint8Array(Math.min(chunk, left));
        let filled = 0;
        while (filled < buf.length) {
          const n = await ra.readAt(buf.subarray(filled), at + filled);
          if (n === 0) break;
          filled += n;
        }
        if (filled === 0) break; // the file is shorter than recorded
        at += filled;
        left -= filled;
        yield buf.subarray(0, filled);
      }
    } finally {
      ra.close();
    }
  }

  /**
   * Opens a writer for `ref` in the namespace, resuming an earlier ingest of the same ref. Fails with
   * alreadyExists when the namespace already holds `expected`, and unavailable when another writer
   * still holds the ref after the lock wait.
   */
  async writer(ns: string, ref: string, options: WriterOptions = {}): Promise<Writer> {
    if (ref === "") throw invalidArgument("Cannot open a content writer: ref must not be empty");
    const expected = options.expected ?? "";
    const total = options.total ?? 0;
    let shared: SharedBlob | undefined;
    if (expected !== "") {
      parseDigest(expected);
      if (this.#row(ns, expected) !== undefined) {
        throw alreadyExists(`Content ${expected} already exists in namespace ${ns}`);
      }
      if (this.#sharing === "shared" && this.#heldAnywhere(expected)) {
        const size = await this.#backend.blobSize(expected);
        if (size !== undefined && (total === 0 || total === size)) shared = { digest: expected, size };
      }
    }
    const w = new ContentWriter(this.#host, ns, ref, {
      key: lockKey(ns, ref),
      leased: options.leased ?? false,
    });
    await this.#locks.acquire(w.key, w, { ref, waitMs: this.#lockWaitMs });
    try {
      if (shared !== undefined) w.startShared(shared);
      else await w.open(total, expected);
    } catch (err) {
      this.#host.release(w);
      throw err;
    }
    return w;
  }

  /** The progress of the namespace's ingest `ref`. */
  async status(ns: string, ref: string): Promise<Status> {
    const st = this.#recorded(ns, ref) ? await this.#status(ns, ref) : undefined;
    if (st === undefined) throw notFound(`Ingest ref ${ref} not found in namespace ${ns}`);
    return st;
  }

  /** The namespace's ingests whose ref matches `filters` (field: ref), by ref. */
  async listStatuses(ns: string, options: { filters?: readonly string[] } = {}): Promise<Status[]> {
    const filter = parseFilters(options.filters ?? []);
    const refs = this.#db.sql.prepare("SELECT ref FROM content_ingests WHERE namespace = ? ORDER BY ref")
      .all(ns) as { ref: string }[];
    const out: Status[] = [];
    for (const { ref } of refs) {
      if (!filter.match(objectAdaptor({ ref }))) continue;
      const st = await this.#status(ns, ref);
      if (st !== undefined) out.push(st); // undefined: being created or removed right now
    }
    return out;
  }

  /** Drops the namespace's ingest `ref` and its data. */
  async abort(ns: string, ref: string): Promise<void> {
    const removed = await this.#backend.abort({ namespace: ns, ref });
    // A record without data (a crash between the two) is dropped here too.
    if (!this.#forgetIngest(ns, ref) && !removed) {
      throw notFound(`Ingest ref ${ref} not found in namespace ${ns}`);
    }
  }

  /** The namespace's ingests, for garbage collection's transaction. */
  ingestsSync(ns: string): IngestRecord[] {
    const rows = this.#db.prepareBigInts(
      "SELECT ref, expires_ns FROM content_ingests WHERE namespace = ? ORDER BY ref",
    ).all(ns) as { ref: string; expires_ns: bigint | null }[];
    return rows.map((r) => ({
      ref: r.ref,
      ...(r.expires_ns === null ? {} : { expiresAt: r.expires_ns }),
      writing: this.#locks.holder(lockKey(ns, r.ref)) !== undefined,
    }));
  }

  /**
   * abort() without yielding, for garbage collection's transaction: the ingest's data and record go
   * together, so no writer can open the ref in between (a remote's data goes at the next sweep). One a
   * writer has open is refused.
   */
  abortSync(ns: string, ref: string): void {
    if (this.#locks.holder(lockKey(ns, ref)) !== undefined) {
      throw failedPrecondition(`Cannot abort ingest ${ref} in namespace ${ns}: a writer has it open`);
    }
    if (this.#backend.kind === "sync") this.#backend.abortSync({ namespace: ns, ref });
    else this.#unswept = true;
    this.#forgetIngest(ns, ref);
  }

  /**
   * Removes from a remote backend the blobs no namespace holds and the ingests none has, as
   * containerd's metadata store does after a collection: the remote is this store's alone. Runs only
   * after a delete or abort left something to sweep (or the last sweep failed); returns how many blobs
   * went. The local folder needs none: its deletes are synchronous.
   */
  async sweep(): Promise<number> {
    const backend = this.#backend;
    if (backend.kind !== "swept" || !this.#unswept) return 0;
    this.#unswept = false;
    let removed = 0;
    try {
      for (const digest of await backend.blobs()) {
        const gone = await this.#gate.exclusive(async () => {
          if (this.#heldAnywhere(digest)) return false;
          await backend.deleteBlob(digest);
          return true;
        });
        if (gone) removed++;
      }
      for (const { name, key } of await backend.ingests()) {
        // Checked and aborted with no writer opening in between; one recorded since the listing is kept.
        await this.#gate.exclusive(async () => {
          if (key === undefined || !this.#recorded(key.namespace, key.ref)) await backend.abortName(name);
        });
      }
    } catch (err) {
      this.#unswept = true;
      throw err;
    }
    return removed;
  }

  /** Every digest any namespace holds (for garbage collection and checks). */
  allDigests(): Set<string> {
    const rows = this.#db.sql.prepare("SELECT DISTINCT digest FROM content_blobs").all() as {
      digest: string;
    }[];
    return new Set(rows.map((r) => r.digest));
  }

  #info(ns: string, digest: string): Info {
    parseDigest(digest);
    const row = this.#row(ns, digest);
    if (row === undefined) throw notFound(`Content ${digest} not found in namespace ${ns}`);
    return toInfo(row);
  }

  #row(ns: string, digest: string): Row | undefined {
    return this.#db.prepareBigInts(`SELECT ${COLUMNS} FROM content_blobs WHERE namespace = ? AND digest = ?`)
      .get(ns, digest) as Row | undefined;
  }

  /**
   * An ingest's progress: from its live writer in this process, whose times are exact, else from the
   * backend. Undefined when there is no such ingest.
   */
  async #status(ns: string, ref: string): Promise<Status | undefined> {
    const live = this.#locks.holder(lockKey(ns, ref));
    if (live?.ingesting) return live.status();
    return await this.#backend.status({ namespace: ns, ref });
  }

  #recorded(ns: string, ref: string): boolean {
    return this.#db.sql.prepare("SELECT 1 FROM content_ingests WHERE namespace = ? AND ref = ?").get(
      ns,
      ref,
    ) !==
      undefined;
  }

  /** Records an ingest as its writer opens it; each opening restarts an unleased one's day. */
  #recordIngest(ns: string, ref: string, leased: boolean): void {
    this.#db.sql.prepare(
      `INSERT INTO content_ingests (namespace, ref, expires_ns) VALUES (?, ?, ?)
       ON CONFLICT (namespace, ref) DO UPDATE SET expires_ns = excluded.expires_ns`,
    ).run(ns, ref, leased ? null : now() + UNLEASED_INGEST_TTL_NS);
  }

  /** Forgets an ingest's record; false if there was none. */
  #forgetIngest(ns: string, ref: string): boolean {
    const res = this.#db.sql.prepare("DELETE FROM content_ingests WHERE namespace = ? AND ref = ?").run(
      ns,
      ref,
    );
    return Number(res.changes) > 0;
  }

  /**
   * Makes the ingest records match the local folder's ingests at start-up: folders an older Berth left
   * have no record yet, and a crash between a folder's removal and its record's leaves a record alone.
   */
  #reconcileIngests(backend: SyncContentBackend): void {
    const onDisk = new Map<string, IngestKey>();
    for (const key of backend.ingestsSync()) onDisk.set(lockKey(key.namespace, key.ref), key);
    this.#db.tx(() => {
      const rows = this.#db.sql.prepare("SELECT namespace, ref FROM content_ingests").all() as {
        namespace: string;
        ref: string;
      }[];
      for (const r of rows) {
        if (onDisk.delete(lockKey(r.namespace, r.ref))) continue;
        this.#forgetIngest(r.namespace, r.ref);
      }
      // Who leased a folder without a record is unknown: it gets the unleased ingest's day.
      for (const key of onDisk.values()) this.#recordIngest(key.namespace, key.ref, false);
    });
  }

  #heldAnywhere(digest: string): boolean {
    return this.#db.sql.prepare("SELECT 1 FROM content_blobs WHERE digest = ? LIMIT 1").get(digest) !==
      undefined;
  }

  #openIngest(w: ContentWriter, options: BackendWriterOptions): Promise<BackendWriter> {
    const open = () => {
      // Recorded before the backend has it, so that no collection or sweep takes it as nobody's.
      this.#recordIngest(w.namespace, w.ref, w.leased);
      return this.#backend.writer({ namespace: w.namespace, ref: w.ref }, options);
    };
    return this.#backend.kind === "sync" ? open() : this.#gate.shared(open);
  }

  async #commitIngest(
    w: ContentWriter,
    ingest: BackendWriter,
    want: { size: number; expected: string },
    labels: Record<string, string>,
  ): Promise<Info> {
    const commit = async () => {
      const blob = await ingest.commit(want.size, want.expected);
      try {
        return this.#record(w.namespace, blob, labels);
      } finally {
        // Committed or already present: either way this ingest has served its purpose.
        if (await ingest.discard()) this.#forgetIngest(w.namespace, w.ref);
      }
    };
    return this.#backend.kind === "sync" ? await commit() : await this.#gate.shared(commit);
  }

  async #commitShared(w: ContentWriter, blob: SharedBlob, labels: Record<string, string>): Promise<Info> {
    const backend = this.#backend;
    let info: Info;
    const missing = () => notFound(`Content ${blob.digest} has no blob in ${backend.description} to share`);
    if (backend.kind === "sync") {
      info = this.#record(w.namespace, {
        ...blob,
        place: () => {
          if (backend.blobSizeSync(blob.digest) === undefined) throw missing();
        },
      }, labels);
    } else {
      info = await this.#gate.shared(async () => {
        if (await backend.blobSize(blob.digest) === undefined) throw missing();
        return this.#record(w.namespace, { ...blob, place() {} }, labels);
      });
    }
    // A stale ingest of this ref, if any; one that will not go stays recorded, for an abort.
    if (this.#recorded(w.namespace, w.ref)) {
      try {
        await backend.abort({ namespace: w.namespace, ref: w.ref });
        this.#forgetIngest(w.namespace, w.ref);
      } catch { /* kept */ }
    }
    return info;
  }

  /** Records `blob` in the namespace, placing it in the backend in the same transaction. */
  #record(ns: string, blob: Committed, labels: Record<string, string>): Info {
    return this.#db.tx(() => {
      if (this.#row(ns, blob.digest) !== undefined) {
        throw alreadyExists(`Content ${blob.digest} already exists in namespace ${ns}`);
      }
      blob.place();
      const committedAt: UnixNanos = now();
      const clean = dropEmpty(labels);
      this.#db.sql.prepare(
        `INSERT INTO content_blobs (namespace, ${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(ns, blob.digest, blob.size, committedAt, committedAt, JSON.stringify(clean));
      return {
        digest: blob.digest,
        size: blob.size,
        createdAt: committedAt,
        updatedAt: committedAt,
        labels: clean,
      };
    });
  }
}

/** The lock of a namespace's ref (a namespace holds no NUL). */
function lockKey(ns: string, ref: string): string {
  return `${ns}\0${ref}`;
}

function toInfo(row: Row): Info {
  return {
    digest: row.digest,
    size: Number(row.size),
    createdAt: row.created_ns,
    updatedAt: row.updated_ns,
    labels: JSON.parse(row.labels) as Record<string, string>,
  };
}

// containerd stores no empty label values: setting a label to "" removes it.
function dropEmpty(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== ""));
}
