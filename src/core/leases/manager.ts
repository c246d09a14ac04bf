import { now, type UnixNanos } from "../../base/clock.ts";
import { alreadyExists, invalidArgument, notFound, notImplemented } from "../../base/errors.ts";
import { validateDigest } from "../../oci/digest.ts";
import { validateLabels } from "../content/labels.ts";
import { labelsAdaptor, objectAdaptor, parseFilters } from "../filters/mod.ts";
import type { MetadataDB } from "../metadata/db.ts";

export interface Lease {
  readonly id: string;
  readonly createdAt: UnixNanos;
  readonly labels: Readonly<Record<string, string>>;
}

/** A resource a lease keeps from garbage collection. */
export interface LeaseResource {
  readonly id: string;
  /** "content", "ingests", "images" or "snapshots/<snapshotter>". */
  readonly type: string;
}

/** The label whose RFC 3339 time ends a lease (read by the garbage collector). */
export const LEASE_EXPIRE_LABEL = "containerd.io/gc.expire";

/** The schema steps, appended and never edited: the first n are the schema a database at version n has. */
export const MIGRATIONS = [
  `CREATE TABLE leases (
     namespace TEXT NOT NULL,
     id TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     labels TEXT NOT NULL DEFAULT '{}',
     PRIMARY KEY (namespace, id)
   ) WITHOUT ROWID;
   CREATE TABLE lease_resources (
     namespace TEXT NOT NULL,
     lease TEXT NOT NULL,
     type TEXT NOT NULL,
     id TEXT NOT NULL,
     PRIMARY KEY (namespace, lease, type, id),
     FOREIGN KEY (namespace, lease) REFERENCES leases (namespace, id) ON DELETE CASCADE
   ) WITHOUT ROWID;
   CREATE INDEX lease_resources_by_resource ON lease_resources (namespace, type, id);`,
  // Times were Date.now() milliseconds; they become nanoseconds, as containerd keeps them.
  `ALTER TABLE leases RENAME COLUMN created_at TO created_ns;
   UPDATE leases SET created_ns = created_ns * 1000000;`,
];

interface LeaseRow {
  id: string;
  created_ns: bigint;
  labels: string;
}

/**
 * Leases (containerd's leases.Manager) in the metadata database: named, labelled holds on content,
 * ingests, images and snapshots, so that a client's work in progress survives garbage collection.
 */
export class LeaseManager {
  readonly #db: MetadataDB;

  constructor(db: MetadataDB) {
    this.#db = db;
    db.migrate("leases", MIGRATIONS);
  }

  /** Creates a lease; without an id one is generated. */
  create(ns: string, lease: { id?: string; labels?: Readonly<Record<string, string>> } = {}): Promise<Lease> {
    return Promise.resolve().then(() => {
      const id = lease.id || generateId();
      const labels = Object.fromEntries(Object.entries(lease.labels ?? {}).filter(([, v]) => v !== ""));
      validateLabels(labels);
      const createdAt = now();
      return this.#db.tx(() => {
        if (this.#get(ns, id) !== undefined) {
          throw alreadyExists(`Lease ${id} already exists in namespace ${ns}`);
        }
        this.#db.sql.prepare("INSERT INTO leases (namespace, id, created_ns, labels) VALUES (?, ?, ?, ?)")
          .run(ns, id, createdAt, JSON.stringify(labels));
        return { id, createdAt, labels };
      });
    });
  }

  /** Deletes a lease and releases its resources. */
  delete(ns: string, id: string): Promise<void> {
    return Promise.resolve().then(() => this.deleteSync(ns, id));
  }

  /** delete() without yielding, for the garbage collector's transaction. */
  deleteSync(ns: string, id: string): void {
    this.#db.tx(() => {
      const res = this.#db.sql.prepare("DELETE FROM leases WHERE namespace = ? AND id = ?").run(ns, id);
      if (res.changes === 0) throw notFound(`Lease ${id} not found in namespace ${ns}`);
      this.#db.markDirty();
    });
  }

  /**
   * Deletes the leases of every namespace that carry the label `label`: a daemon's own leases, whose
   * holder died with the daemon (an unpack it was running), dropped as it starts again.
   */
  deleteLabelledSync(label: string): number {
    const rows = this.#db.sql.prepare("SELECT namespace, id, labels FROM leases").all() as unknown as {
      namespace: string;
      id: string;
      labels: string;
    }[];
    let n = 0;
    for (const r of rows) {
      if ((JSON.parse(r.labels) as Record<string, string>)[label] === undefined) continue;
      this.deleteSync(r.namespace, r.id);
      n++;
    }
    return n;
  }

  /** The namespace's leases matching `filters` (fields: id, labels.*). */
  list(ns: string, options: { filters?: readonly string[] } = {}): Promise<Lease[]> {
    return Promise.resolve().then(() => this.listSync(ns, options));
  }

  /** list() without yielding, for the garbage collector's transaction. */
  listSync(ns: string, options: { filters?: readonly string[] } = {}): Lease[] {
    const filter = parseFilters(options.filters ?? []);
    const rows = this.#db.prepareBigInts(
      "SELECT id, created_ns, labels FROM leases WHERE namespace = ? ORDER BY id",
    ).all(ns) as unknown as LeaseRow[];
    return rows.map(toLease).filter((l) =>
      filter.match(objectAdaptor({ id: l.id, labels: labelsAdaptor(l.labels) }))
    );
  }

  get(ns: string, id: string): Promise<Lease> {
    return Promise.resolve().then(() => {
      const row = this.#get(ns, id);
      if (row === undefined) throw notFound(`Lease ${id} not found in namespace ${ns}`);
      return toLease(row);
    });
  }

  addResource(ns: string, lease: string, resource: LeaseResource): Promise<void> {
    return Promise.resolve().then(() => {
      const r = normalizeResource(resource);
      this.#db.tx(() => {
        if (this.#get(ns, lease) === undefined) throw notFound(`Lease ${lease} not found in namespace ${ns}`);
        this.#db.sql.prepare(
          "INSERT OR IGNORE INTO lease_resources (namespace, lease, type, id) VALUES (?, ?, ?, ?)",
        ).run(ns, lease, r.type, r.id);
      });
    });
  }

  deleteResource(ns: string, lease: string, resource: LeaseResource): Promise<void> {
    return Promise.resolve().then(() => {
      const r = normalizeResource(resource);
      this.#db.tx(() => {
        if (this.#get(ns, lease) === undefined) throw notFound(`Lease ${lease} not found in namespace ${ns}`);
        this.#db.sql.prepare(
          "DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND id = ?",
        ).run(ns, lease, r.type, r.id);
        this.#db.markDirty();
      });
    });
  }

  listResources(ns: string, lease: string): Promise<LeaseResource[]> {
    return Promise.resolve().then(() => {
      if (this.#get(ns, lease) === undefined) throw notFound(`Lease ${lease} not found in namespace ${ns}`);
      return this.#db.sql.prepare(
        "SELECT id, type FROM lease_resources WHERE namespace = ? AND lease = ? ORDER BY type, id",
      ).all(ns, lease).map((r) => ({ id: String(r.id), type: String(r.type) }));
    });
  }

  /** Every resource held by any lease of the namespace (for the garbage collector). */
  leasedResources(ns: string): LeaseResource[] {
    return this.#db.sql.prepare(
      "SELECT DISTINCT id, type FROM lease_resources WHERE namespace = ? ORDER BY type, id",
    ).all(ns).map((r) => ({ id: String(r.id), type: String(r.type) }));
  }

  #get(ns: string, id: string): LeaseRow | undefined {
    return this.#db.prepareBigInts("SELECT id, created_ns, labels FROM leases WHERE namespace = ? AND id = ?")
      .get(ns, id) as LeaseRow | undefined;
  }
}

function toLease(row: LeaseRow): Lease {
  return {
    id: row.id,
    createdAt: row.created_ns,
    labels: JSON.parse(row.labels) as Record<string, string>,
  };
}

/** Validates a resource as containerd does: known types only, content ids must be digests. */
function normalizeResource(r: LeaseResource): LeaseResource {
  const parts = r.type.split("/");
  switch (parts[0]) {
    case "content":
    case "ingests":
    case "images":
      if (parts.length !== 1) throw invalidArgument(`Invalid lease resource type ${r.type}`);
      if (parts[0] === "content") validateDigest(r.id);
      break;
    case "snapshots":
      if (parts.length !== 2 || parts[1] === "") {
        throw invalidArgument(`Invalid lease resource type ${r.type}: expected snapshots/<snapshotter>`);
      }
      break;
    default:
      throw notImplemented(`Lease resource type ${r.type} is not supported`);
  }
  if (r.id === "") throw invalidArgument(`Invalid lease resource of type ${r.type}: the id is empty`);
  return { id: r.id, type: r.type };
}

// Like containerd's leases.WithRandomID: a time prefix keeps ids roughly ordered, random bytes unique.
function generateId(): string {
  const b = crypto.getRandomValues(new Uint8Array(8));
  const rand = btoa(String.fromCharCode(...b)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  return `${Date.now()}-${rand}`;
}
