import { now } from "../../base/clock.ts";
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from "../../base/errors.ts";
import { validateIdentifier } from "../identifiers/mod.ts";
import type { MetadataDB } from "../metadata/db.ts";

export interface Namespace {
  name: string;
  labels: Record<string, string>;
}

/** The schema steps, appended and never edited: the first n are the schema a database at version n has. */
export const MIGRATIONS = [
  `CREATE TABLE namespaces (
     name TEXT PRIMARY KEY,
     labels TEXT NOT NULL DEFAULT '{}',
     created_at INTEGER NOT NULL
   )`,
  // Times were Date.now() milliseconds; they become nanoseconds, as everywhere else.
  `ALTER TABLE namespaces RENAME COLUMN created_at TO created_ns;
   UPDATE namespaces SET created_ns = created_ns * 1000000;`,
];

/**
 * Namespaces are created explicitly or, as in containerd, implicitly by the first object made in
 * them: every table with a `namespace` column counts, so a pulled image makes its namespace visible.
 */
export class NamespaceStore {
  readonly #db: MetadataDB;

  constructor(db: MetadataDB) {
    this.#db = db;
    db.migrate("namespaces", MIGRATIONS);
  }

  create(ns: Namespace): Namespace {
    validateIdentifier("namespace", ns.name);
    validateLabels(ns.labels);
    return this.#db.tx(() => {
      if (this.#explicit(ns.name) || this.#holders(ns.name).length > 0) {
        throw alreadyExists(`Namespace "${ns.name}" already exists`);
      }
      this.#db.sql.prepare("INSERT INTO namespaces (name, labels, created_ns) VALUES (?, ?, ?)").run(
        ns.name,
        JSON.stringify(ns.labels),
        now(),
      );
      return { name: ns.name, labels: { ...ns.labels } };
    });
  }

  get(name: string): Namespace {
    validateIdentifier("namespace", name);
    const row = this.#explicit(name);
    if (row) return row;
    if (this.#holders(name).length > 0) return { name, labels: {} };
    throw notFound(`Namespace "${name}" not found`);
  }

  list(): Namespace[] {
    const byName = new Map<string, Namespace>();
    const rows = this.#db.sql.prepare("SELECT name, labels FROM namespaces").all() as unknown as Row[];
    for (const r of rows) byName.set(r.name, { name: r.name, labels: JSON.parse(r.labels) });
    for (const table of this.#namespacedTables()) {
      const names = this.#db.sql.prepare(`SELECT DISTINCT namespace FROM "${table}"`).all() as {
        namespace: string;
      }[];
      for (const { namespace } of names) {
        if (!byName.has(namespace)) byName.set(namespace, { name: namespace, labels: {} });
      }
    }
    return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Replaces labels: `paths` empty replaces them all; `labels` replaces them all; `labels.<key>` sets
   * or (when absent from `ns`) removes one key. A namespace that does not exist yet is created, as
   * containerd's SetLabel does: its Go client labels a namespace before it puts anything in it.
   */
  update(ns: Namespace, paths: readonly string[]): Namespace {
    validateIdentifier("namespace", ns.name);
    validateLabels(ns.labels);
    return this.#db.tx(() => {
      let labels = { ...this.#explicit(ns.name)?.labels };
      if (paths.length === 0) labels = { ...ns.labels };
      for (const path of paths) {
        if (path === "labels") labels = { ...ns.labels };
        else if (path.startsWith("labels.")) {
          const key = path.slice("labels.".length);
          const value = ns.labels[key];
          if (value === undefined || value === "") delete labels[key];
          else labels[key] = value;
        } else {
          throw invalidArgument(
            `Cannot update field "${path}" of namespace "${ns.name}": only labels change`,
          );
        }
      }
      this.#db.sql.prepare(
        "INSERT INTO namespaces (name, labels, created_ns) VALUES (?, ?, ?) " +
          "ON CONFLICT(name) DO UPDATE SET labels = excluded.labels",
      ).run(ns.name, JSON.stringify(labels), now());
      return { name: ns.name, labels };
    });
  }

  /** Deletes an empty namespace; one that still holds objects is a failed precondition, as in containerd. */
  delete(name: string): void {
    validateIdentifier("namespace", name);
    this.#db.tx(() => {
      const holders = this.#holders(name);
      if (holders.length > 0) {
        throw failedPrecondition(
          `Namespace "${name}" must be empty, but it still has ${holders.join(", ")}`,
        );
      }
      const res = this.#db.sql.prepare("DELETE FROM namespaces WHERE name = ?").run(name);
      if (Number(res.changes) === 0) throw notFound(`Namespace "${name}" not found`);
    });
  }

  #explicit(name: string): Namespace | undefined {
    const row = this.#db.sql.prepare("SELECT name, labels FROM namespaces WHERE name = ?").get(name) as
      | Row
      | undefined;
    return row ? { name: row.name, labels: JSON.parse(row.labels) } : undefined;
  }

  /** The kinds of object (table names) that still have rows in `name`. */
  #holders(name: string): string[] {
    const out: string[] = [];
    for (const table of this.#namespacedTables()) {
      const hit = this.#db.sql.prepare(`SELECT 1 FROM "${table}" WHERE namespace = ? LIMIT 1`).get(name);
      if (hit) out.push(table);
    }
    return out;
  }

  #namespacedTables(): string[] {
    const tables = this.#db.sql.prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    ).all() as { name: string }[];
    return tables.map((t) => t.name).filter((t) => {
      const cols = this.#db.sql.prepare(`PRAGMA table_info("${t}")`).all() as { name: string }[];
      return cols.some((c) => c.name === "namespace");
    });
  }
}

interface Row {
  name: string;
  labels: string;
}

/** containerd limits a label (key plus value) to 4096 bytes. */
export function validateLabels(labels: Record<string, string>): void {
  for (const [k, v] of Object.entries(labels)) {
    if (k === "") throw failedPrecondition("Invalid label: the key must not be empty");
    if (k.length + v.length > 4096) {
      throw failedPrecondition(`Invalid label "${k}": key and value exceed 4096 bytes`);
    }
  }
}
