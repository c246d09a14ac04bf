import { join } from "node:path";
import { alreadyExists, invalidArgument, notFound, unavailable } from "../errdefs/mod.ts";
import { type Adaptor, labelsAdaptor, objectAdaptor, parseFilters } from "../filters/mod.ts";
import type { MetadataDB } from "../metadata/db.ts";
import { parseDigest } from "./digest.ts";
import { IngestDir, readStatus } from "./ingest.ts";
import { applyLabelPaths, validateLabels } from "./labels.ts";
import type { Info, ReaderAt, Status, Writer, WriterOptions } from "./types.ts";
import { ContentWriter, type SharedBlob, type WriterHost } from "./writer.ts";

const MIGRATIONS = [
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
];

interface Row {
  digest: string;
  size: number;
  created_at: number;
  updated_at: number;
  labels: string;
}

/** Blobs up to this size are read with synchronous calls (see readerAt). */
const SMALL_BLOB = 256 << 10;

export interface ContentStoreOptions {
  /**
   * "shared" (containerd's default): a writer expecting a blob that another namespace holds is complete
   * at once, so namespaces do not pull the same content twice. "isolated": every namespace writes its
   * own bytes (still stored once on disk).
   */
  readonly sharing?: "shared" | "isolated";
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
 * containerd's content store: blobs live once on disk at `<root>/blobs/<alg>/<hex>`, and a namespaced
 * table says which namespace holds which blob (size, times, labels). Writes go through an ingest area
 * (`<root>/ingest/…`), are verified, then renamed into place.
 */
export class ContentStore {
  readonly root: string;
  readonly #db: MetadataDB;
  readonly #sharing: "shared" | "isolated";
  readonly #locks = new Map<string, { writer: ContentWriter; since: Date }>();
  readonly #host: WriterHost;

  constructor(root: string, db: MetadataDB, options: ContentStoreOptions = {}) {
    this.root = root;
    this.#db = db;
    this.#sharing = options.sharing ?? "shared";
    db.migrate("content", MIGRATIONS);
    Deno.mkdirSync(join(root, "ingest"), { recursive: true });
    Deno.mkdirSync(join(root, "blobs"), { recursive: true });
    this.#host = {
      ingestRoot: join(root, "ingest"),
      blobPath: (d) => this.blobPath(d),
      commitBlob: (ns, blob, labels) => this.#commitBlob(ns, blob, labels),
      release: (w) => {
        if (this.#locks.get(w.key)?.writer === w) this.#locks.delete(w.key);
      },
    };
  }

  /** Where a blob lives on disk (whether or not it exists). */
  blobPath(digest: string): string {
    const { algorithm, encoded } = parseDigest(digest);
    return join(this.root, "blobs", algorithm, encoded);
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
        const now = Date.now();
        this.#db.sql.prepare(
          "UPDATE content_blobs SET labels = ?, updated_at = ? WHERE namespace = ? AND digest = ?",
        ).run(JSON.stringify(labels), now, ns, info.digest);
        return { ...current, labels, updatedAt: new Date(now) };
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
    const rows = this.#db.sql.prepare(
      "SELECT digest, size, created_at, updated_at, labels FROM content_blobs WHERE namespace = ? ORDER BY digest",
    ).all(ns) as unknown as Row[];
    return rows.map(toInfo).filter((info) => filter.match(adaptInfo(info)));
  }

  /** Removes the blob from the namespace, and from disk once no namespace holds it. */
  delete(ns: string, digest: string): Promise<void> {
    return Promise.resolve().then(() => this.deleteSync(ns, digest));
  }

  /** delete() without yielding, for the garbage collector's transaction. */
  deleteSync(ns: string, digest: string): void {
    const path = this.blobPath(digest);
    this.#db.tx(() => {
      const res = this.#db.sql.prepare("DELETE FROM content_blobs WHERE namespace = ? AND digest = ?").run(
        ns,
        digest,
      );
      if (res.changes === 0) throw notFound(`Content ${digest} not found in namespace ${ns}`);
      this.#db.markDirty();
      const held = this.#db.sql.prepare("SELECT 1 FROM content_blobs WHERE digest = ? LIMIT 1").get(digest);
      if (held === undefined) {
        try {
          Deno.removeSync(path);
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        }
      }
    });
  }

  /** Random access to a blob the namespace holds. */
  async readerAt(ns: string, digest: string): Promise<ReaderAt> {
    const info = this.#info(ns, digest);
    // Manifests, indexes and configs are read on every run: for blobs this small a synchronous
    // open and read (page cache, microseconds) beat three round trips through the blocking pool.
    const small = info.size <= SMALL_BLOB;
    let file: Deno.FsFile;
    try {
      file = small
        ? Deno.openSync(this.blobPath(digest), { read: true })
        : await Deno.open(this.blobPath(digest), { read: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw notFound(`Content ${digest} is recorded in namespace ${ns} but its blob is missing`);
      }
      throw err;
    }
    let pos = 0;
    return {
      size: info.size,
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

  /**
   * Streams a blob (or the range `offset`, `size`) in chunks of at most `chunkSize` bytes. A range past
   * the end is cut at the end; an offset past the end is invalid.
   */
  async *read(ns: string, digest: string, options: ReadOptions = {}): AsyncGenerator<Uint8Array> {
    const ra = await this.readerAt(ns, digest);
    try {
      const offset = Math.max(0, options.offset ?? 0);
      if (offset > ra.size) {
        throw invalidArgument(`Cannot read content ${digest} at ${offset}: past its ${ra.size} bytes`);
      }
      let left = options.size && options.size > 0
        ? Math.min(options.size, ra.size - offset)
        : ra.size - offset;
      const chunk = options.chunkSize ?? 1 << 20;
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
   * alreadyExists when the namespace already holds `expected`, and unavailable while another writer
   * holds the ref.
   */
  async writer(ns: string, ref: string, options: WriterOptions = {}): Promise<Writer> {
    if (ref === "") throw invalidArgument("Cannot open a content writer: ref must not be empty");
    const expected = options.expected ?? "";
    const total = options.total ?? 0;
    let shared: SharedBlob | undefined;
    if (expected !== "") {
      const path = this.blobPath(expected);
      if (this.#row(ns, expected) !== undefined) {
        throw alreadyExists(`Content ${expected} already exists in namespace ${ns}`);
      }
      if (this.#sharing === "shared" && this.#heldAnywhere(expected)) {
        const size = fileSize(path);
        if (size !== undefined && (total === 0 || total === size)) shared = { digest: expected, size };
      }
    }
    const w = ContentWriter.create(this.#host, ns, ref);
    const held = this.#locks.get(w.key);
    if (held !== undefined) {
      const secs = ((Date.now() - held.since.getTime()) / 1000).toFixed(1);
      throw unavailable(`Ref ${ref} locked for ${secs}s (since ${held.since.toISOString()})`);
    }
    this.#locks.set(w.key, { writer: w, since: new Date() });
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
    const dir = new IngestDir(join(this.root, "ingest"), ns, ref);
    try {
      const { namespace: _, ...st } = await readStatus(dir.path);
      return st;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound || (err as { kind?: string }).kind === "not_found") {
        throw notFound(`Ingest ref ${ref} not found in namespace ${ns}`);
      }
      throw err;
    }
  }

  /** The namespace's ingests whose ref matches `filters` (field: ref). */
  async listStatuses(ns: string, options: { filters?: readonly string[] } = {}): Promise<Status[]> {
    const filter = parseFilters(options.filters ?? []);
    const out: Status[] = [];
    for await (const entry of Deno.readDir(join(this.root, "ingest"))) {
      if (!entry.isDirectory) continue;
      let st;
      try {
        st = await readStatus(join(this.root, "ingest", entry.name));
      } catch {
        continue; // being created or removed right now
      }
      const { namespace, ...status } = st;
      if (namespace !== ns) continue;
      if (filter.match(objectAdaptor({ ref: status.ref }))) out.push(status);
    }
    return out.sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  }

  /** Drops the namespace's ingest `ref` and its data. */
  async abort(ns: string, ref: string): Promise<void> {
    const dir = new IngestDir(join(this.root, "ingest"), ns, ref);
    try {
      await Deno.remove(dir.path, { recursive: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw notFound(`Ingest ref ${ref} not found in namespace ${ns}`);
      }
      throw err;
    }
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
    return this.#db.sql.prepare(
      "SELECT digest, size, created_at, updated_at, labels FROM content_blobs WHERE namespace = ? AND digest = ?",
    ).get(ns, digest) as Row | undefined;
  }

  #heldAnywhere(digest: string): boolean {
    return this.#db.sql.prepare("SELECT 1 FROM content_blobs WHERE digest = ? LIMIT 1").get(digest) !==
      undefined;
  }

  #commitBlob(
    ns: string,
    blob: { digest: string; size: number; data?: string },
    labels: Record<string, string>,
  ): Info {
    const path = this.blobPath(blob.digest);
    return this.#db.tx(() => {
      if (this.#row(ns, blob.digest) !== undefined) {
        throw alreadyExists(`Content ${blob.digest} already exists in namespace ${ns}`);
      }
      if (blob.data !== undefined && fileSize(path) === undefined) {
        Deno.mkdirSync(join(path, ".."), { recursive: true });
        Deno.chmodSync(blob.data, 0o444);
        Deno.renameSync(blob.data, path);
      } else if (fileSize(path) === undefined) {
        throw notFound(`Content ${blob.digest} has no blob on disk to share`);
      }
      const now = Date.now();
      const clean = dropEmpty(labels);
      this.#db.sql.prepare(
        "INSERT INTO content_blobs (namespace, digest, size, created_at, updated_at, labels) VALUES (?, ?, ?, ?, ?, ?)",
      ).run(ns, blob.digest, blob.size, now, now, JSON.stringify(clean));
      return {
        digest: blob.digest,
        size: blob.size,
        createdAt: new Date(now),
        updatedAt: new Date(now),
        labels: clean,
      };
    });
  }
}

function toInfo(row: Row): Info {
  return {
    digest: row.digest,
    size: Number(row.size),
    createdAt: new Date(Number(row.created_at)),
    updatedAt: new Date(Number(row.updated_at)),
    labels: JSON.parse(row.labels) as Record<string, string>,
  };
}

// containerd stores no empty label values: setting a label to "" removes it.
function dropEmpty(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== ""));
}

function fileSize(path: string): number | undefined {
  try {
    return Deno.statSync(path).size;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}
