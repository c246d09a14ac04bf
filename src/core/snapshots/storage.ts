/**
 * Snapshot metadata in the shared SQLite database: what containerd's snapshotters keep in their own
 * bolt file. Rows are keyed by (snapshotter, namespace, key); ids are global per snapshotter and name
 * the on-disk folder. Every change runs inside one MetadataDB transaction, together with the caller's
 * on-disk step, so a crash leaves either both or neither.
 */
import { now } from "../../base/clock.ts";
import type { MetadataDB } from "../metadata/db.ts";
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from "../../base/errors.ts";
import { type Filter, labelsAdaptor, objectAdaptor } from "../filters/mod.ts";
import type { Info, Kind, Usage } from "./snapshotter.ts";

/** The schema steps, appended and never edited: the first n are the schema a database at version n has. */
export const MIGRATIONS = [
  `CREATE TABLE snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    snapshotter TEXT NOT NULL,
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    parent_id INTEGER REFERENCES snapshots(id),
    labels TEXT NOT NULL DEFAULT '{}',
    created_ms REAL NOT NULL,
    updated_ms REAL NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    inodes INTEGER NOT NULL DEFAULT 0,
    UNIQUE (snapshotter, namespace, key)
  );
  CREATE INDEX snapshots_parent ON snapshots(parent_id);`,
  // Times were Date.now() milliseconds in REAL columns, which would round nanoseconds to a double's
  // 256 ns steps: they move to INTEGER columns of nanoseconds, as containerd keeps them.
  `ALTER TABLE snapshots ADD COLUMN created_ns INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE snapshots ADD COLUMN updated_ns INTEGER NOT NULL DEFAULT 0;
   UPDATE snapshots SET created_ns = CAST(ROUND(created_ms) AS INTEGER) * 1000000,
     updated_ns = CAST(ROUND(updated_ms) AS INTEGER) * 1000000;
   ALTER TABLE snapshots DROP COLUMN created_ms;
   ALTER TABLE snapshots DROP COLUMN updated_ms;`,
];

/** A snapshot row, read with bigints (see MetadataDB.prepareBigInts). */
interface Row {
  id: bigint;
  key: string;
  kind: Kind;
  parent_id: bigint | null;
  parent_key: string | null;
  labels: string;
  created_ns: bigint;
  updated_ns: bigint;
  size: bigint;
  inodes: bigint;
}

/** What a snapshotter needs to build mounts: its own id and the ids of its parents, nearest first. */
export interface StoredSnapshot {
  readonly id: string;
  readonly kind: Kind;
  readonly parentIds: readonly string[];
}

const SELECT = `SELECT s.id, s.key, s.kind, s.parent_id, p.key AS parent_key, s.labels, s.created_ns,
  s.updated_ns, s.size, s.inodes FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id`;

function toInfo(row: Row): Info {
  return {
    name: row.key,
    parent: row.parent_key ?? "",
    kind: row.kind,
    labels: JSON.parse(row.labels) as Record<string, string>,
    created: row.created_ns,
    updated: row.updated_ns,
  };
}

export class SnapshotStore {
  readonly #db: MetadataDB;
  readonly #snapshotter: string;

  constructor(db: MetadataDB, snapshotter: string) {
    this.#db = db;
    this.#snapshotter = snapshotter;
    db.migrate("snapshots", MIGRATIONS);
  }

  /** Runs `fn` in one transaction; on-disk steps inside it roll the metadata back when they throw. */
  tx<T>(fn: () => T): T {
    return this.#db.tx(fn);
  }

  #row(ns: string, key: string): Row | undefined {
    return this.#db.prepareBigInts(`${SELECT} WHERE s.snapshotter = ? AND s.namespace = ? AND s.key = ?`)
      .get(this.#snapshotter, ns, key) as Row | undefined;
  }

  #mustRow(ns: string, key: string): Row {
    const row = this.#row(ns, key);
    if (!row) throw notFound(`Snapshot "${key}" does not exist in namespace "${ns}"`);
    return row;
  }

  #parentIds(parentId: bigint | null): string[] {
    const ids: string[] = [];
    const stmt = this.#db.prepareBigInts("SELECT parent_id FROM snapshots WHERE id = ?");
    for (let id = parentId; id !== null;) {
      ids.push(String(id));
      id = (stmt.get(id) as { parent_id: bigint | null } | undefined)?.parent_id ?? null;
    }
    return ids;
  }

  getInfo(ns: string, key: string): { id: string; info: Info; usage: Usage } {
    const row = this.#mustRow(ns, key);
    return {
      id: String(row.id),
      info: toInfo(row),
      usage: { size: Number(row.size), inodes: Number(row.inodes) },
    };
  }

  /** An active or view snapshot with its parent chain. */
  getSnapshot(ns: string, key: string): StoredSnapshot {
    const row = this.#mustRow(ns, key);
    if (row.kind === "committed") {
      throw failedPrecondition(`Snapshot "${key}" is committed: only active and view snapshots have mounts`);
    }
    return { id: String(row.id), kind: row.kind, parentIds: this.#parentIds(row.parent_id) };
  }

  createSnapshot(
    ns: string,
    kind: "active" | "view",
    key: string,
    options: { parent?: string; labels?: Readonly<Record<string, string>> },
  ): StoredSnapshot {
    if (key === "") throw invalidArgument("Cannot create a snapshot with an empty key");
    let parentId: bigint | null = null;
    if (options.parent) {
      const parent = this.#row(ns, options.parent);
      if (!parent) throw notFound(`Parent snapshot "${options.parent}" of "${key}" does not exist`);
      if (parent.kind !== "committed") {
        throw invalidArgument(`Parent snapshot "${options.parent}" of "${key}" is not committed`);
      }
      parentId = parent.id;
    }
    if (this.#row(ns, key)) throw alreadyExists(`Snapshot "${key}" already exists in namespace "${ns}"`);
    const createdAt = now();
    const res = this.#db.sql.prepare(
      `INSERT INTO snapshots (snapshotter, namespace, key, kind, parent_id, labels, created_ns, updated_ns)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      this.#snapshotter,
      ns,
      key,
      kind,
      parentId,
      JSON.stringify(options.labels ?? {}),
      createdAt,
      createdAt,
    );
    return { id: String(res.lastInsertRowid), kind, parentIds: this.#parentIds(parentId) };
  }

  updateInfo(ns: string, info: Info, fieldpaths: readonly string[]): Info {
    const row = this.#mustRow(ns, info.name);
    let labels = JSON.parse(row.labels) as Record<string, string>;
    if (fieldpaths.length === 0) {
      labels = { ...info.labels };
    } else {
      for (const path of fieldpaths) {
        if (path.startsWith("labels.")) {
          const k = path.slice("labels.".length);
          const v = info.labels[k];
          if (v === undefined || v === "") delete labels[k];
          else labels[k] = v;
        } else if (path === "labels") {
          labels = { ...info.labels };
        } else {
          throw invalidArgument(`Cannot update field "${path}" of snapshot "${info.name}"`);
        }
      }
    }
    const updated = now();
    this.#db.sql.prepare("UPDATE snapshots SET labels = ?, updated_ns = ? WHERE id = ?")
      .run(JSON.stringify(labels), updated, row.id);
    return { ...toInfo(row), labels, updated };
  }

  /** Turns active `key` into committed `name`; returns the id, which (like the folder) stays the same. */
  commitActive(
    ns: string,
    key: string,
    name: string,
    options: { usage: Usage; labels?: Readonly<Record<string, string>> },
  ): string {
    if (name === "") throw invalidArgument(`Cannot commit snapshot "${key}" under an empty name`);
    if (this.#row(ns, name)) throw alreadyExists(`Snapshot "${name}" already exists in namespace "${ns}"`);
    const row = this.#mustRow(ns, key);
    if (row.kind !== "active") {
      throw failedPrecondition(`Snapshot "${key}" is not active (it is ${row.kind})`);
    }
    const committedAt = now();
    this.#db.sql.prepare(
      `UPDATE snapshots SET key = ?, kind = 'committed', labels = ?, created_ns = ?, updated_ns = ?, size = ?,
       inodes = ? WHERE id = ?`,
    ).run(
      name,
      JSON.stringify(options.labels ?? {}),
      committedAt,
      committedAt,
      options.usage.size,
      options.usage.inodes,
      row.id,
    );
    return String(row.id);
  }

  remove(ns: string, key: string): { id: string; kind: Kind } {
    const row = this.#mustRow(ns, key);
    const child = this.#db.sql.prepare("SELECT key FROM snapshots WHERE parent_id = ? LIMIT 1").get(row.id) as
      | { key: string }
      | undefined;
    if (child) {
      throw failedPrecondition(`Cannot remove snapshot "${key}": snapshot "${child.key}" has it as parent`);
    }
    this.#db.sql.prepare("DELETE FROM snapshots WHERE id = ?").run(row.id);
    this.#db.markDirty();
    return { id: String(row.id), kind: row.kind };
  }

  list(ns: string, filter: Filter): Info[] {
    return this.listWithIds(ns, filter).map((e) => e.info);
  }

  /** list(), each snapshot with its id (the name of its folder). */
  listWithIds(ns: string, filter: Filter): { id: string; info: Info }[] {
    const rows = this.#db.prepareBigInts(
      `${SELECT} WHERE s.snapshotter = ? AND s.namespace = ? ORDER BY s.key`,
    )
      .all(this.#snapshotter, ns) as unknown as Row[];
    return rows.map((row) => ({ id: String(row.id), info: toInfo(row) })).filter(({ info }) =>
      filter.match(objectAdaptor({
        name: info.name,
        parent: info.parent,
        kind: info.kind,
        labels: labelsAdaptor(info.labels),
      }))
    );
  }

  /** Every id this snapshotter has, in all namespaces (for cleanup). */
  ids(): Set<string> {
    const rows = this.#db.sql.prepare("SELECT id FROM snapshots WHERE snapshotter = ?").all(
      this.#snapshotter,
    ) as unknown as {
      id: number;
    }[];
    return new Set(rows.map((r) => String(r.id)));
  }
}
