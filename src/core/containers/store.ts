import { now, type UnixNanos } from "../../base/clock.ts";
import { alreadyExists, invalidArgument, notFound } from "../../base/errors.ts";
import { validateLabels } from "../content/labels.ts";
import { type Adaptor, labelsAdaptor, objectAdaptor, parseFilters } from "../filters/mod.ts";
import { validateIdentifier } from "../identifiers/mod.ts";
import type { MetadataDB } from "../metadata/db.ts";

/** A protobuf `Any` as the core keeps it: a type URL and the encoded value (JSON for specs). */
export interface AnyValue {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

export interface RuntimeInfo {
  readonly name: string;
  readonly options?: AnyValue;
}

/** containerd's containers.Container: metadata only, no running state. */
export interface Container {
  readonly id: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly image: string;
  readonly runtime: RuntimeInfo;
  readonly spec?: AnyValue;
  readonly snapshotter: string;
  readonly snapshotKey: string;
  readonly extensions: Readonly<Record<string, AnyValue>>;
  readonly sandbox: string;
  readonly createdAt: UnixNanos;
  readonly updatedAt: UnixNanos;
}

export type ContainerInit = Omit<Container, "createdAt" | "updatedAt">;

/** The type URL containerd gives a runtime spec carried as JSON. */
export const specTypeUrl = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/** The schema steps, appended and never edited: the first n are the schema a database at version n has. */
export const MIGRATIONS = [
  `CREATE TABLE containers (
     namespace TEXT NOT NULL,
     id TEXT NOT NULL,
     labels TEXT NOT NULL DEFAULT '{}',
     image TEXT NOT NULL DEFAULT '',
     runtime_name TEXT NOT NULL,
     runtime_options_type TEXT,
     runtime_options BLOB,
     spec_type TEXT,
     spec BLOB,
     snapshotter TEXT NOT NULL DEFAULT '',
     snapshot_key TEXT NOT NULL DEFAULT '',
     extensions TEXT NOT NULL DEFAULT '{}',
     sandbox TEXT NOT NULL DEFAULT '',
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (namespace, id)
   ) WITHOUT ROWID;`,
  // Times were Date.now() milliseconds; they become nanoseconds, as containerd keeps them.
  `ALTER TABLE containers RENAME COLUMN created_at TO created_ns;
   ALTER TABLE containers RENAME COLUMN updated_at TO updated_ns;
   UPDATE containers SET created_ns = created_ns * 1000000, updated_ns = updated_ns * 1000000;`,
];

interface Row {
  id: string;
  labels: string;
  image: string;
  runtime_name: string;
  runtime_options_type: string | null;
  runtime_options: Uint8Array | null;
  spec_type: string | null;
  spec: Uint8Array | null;
  snapshotter: string;
  snapshot_key: string;
  extensions: string;
  sandbox: string;
  created_ns: bigint;
  updated_ns: bigint;
}

const COLUMNS = "id, labels, image, runtime_name, runtime_options_type, runtime_options, spec_type, spec, " +
  "snapshotter, snapshot_key, extensions, sandbox, created_ns, updated_ns";

/** containerd's container filter fields: id, image, runtime.name, snapshotter, snapshotkey, labels.*. */
export function adaptContainer(c: Container): Adaptor {
  return objectAdaptor({
    id: c.id,
    image: c.image,
    runtime: objectAdaptor({ name: c.runtime.name }),
    snapshotter: c.snapshotter,
    snapshotkey: c.snapshotKey,
    labels: labelsAdaptor(c.labels),
  });
}

/** Container records (containerd's containers.Store) in the metadata database, per namespace. */
export class ContainerStore {
  readonly #db: MetadataDB;

  constructor(db: MetadataDB) {
    this.#db = db;
    db.migrate("containers", MIGRATIONS);
  }

  get(ns: string, id: string): Container {
    if (id === "") throw invalidArgument("Container id must not be empty");
    const row = this.#row(ns, id);
    if (row === undefined) throw notFound(`Container "${id}" in namespace "${ns}": not found`);
    return toContainer(row);
  }

  list(ns: string, options: { filters?: readonly string[] } = {}): Container[] {
    const filter = parseFilters(options.filters ?? []);
    const rows = this.#db.prepareBigInts(`SELECT ${COLUMNS} FROM containers WHERE namespace = ? ORDER BY id`)
      .all(ns) as unknown as Row[];
    return rows.map(toContainer).filter((c) => filter.match(adaptContainer(c)));
  }

  create(ns: string, init: ContainerInit): Container {
    const createdAt = now();
    const c = normalize({ ...init, createdAt, updatedAt: createdAt });
    validateContainer(c);
    return this.#db.tx(() => {
      if (this.#row(ns, c.id) !== undefined) {
        throw alreadyExists(`Container "${c.id}": already exists`);
      }
      this.#write(ns, c);
      return c;
    });
  }

  /**
   * Updates a container as containerd does. `fieldpaths`: labels, labels.<k>, extensions,
   * extensions.<k>, spec, image, snapshotkey, snapshotter, runtime. Without any, labels, spec,
   * extensions, image and snapshotkey are replaced and the immutable fields must not differ.
   */
  update(ns: string, next: ContainerInit, options: { fieldpaths?: readonly string[] } = {}): Container {
    if (next.id === "") throw invalidArgument("Cannot update a container: the id must not be empty");
    return this.#db.tx(() => {
      const cur = this.get(ns, next.id);
      let paths = options.fieldpaths ?? [];
      if (paths.length === 0) {
        paths = ["labels", "spec", "extensions", "image", "snapshotkey"];
        if (next.snapshotter !== cur.snapshotter) {
          throw invalidArgument(`Container "${cur.id}": the snapshotter field is immutable`);
        }
        if (next.runtime.name !== cur.runtime.name) {
          throw invalidArgument(`Container "${cur.id}": the runtime name field is immutable`);
        }
      }
      const out = {
        ...cur,
        labels: { ...cur.labels } as Record<string, string>,
        extensions: { ...cur.extensions } as Record<string, AnyValue>,
      };
      for (const path of paths) {
        if (path.startsWith("labels.")) {
          const key = path.slice("labels.".length);
          const v = next.labels[key];
          if (v === undefined || v === "") delete out.labels[key];
          else out.labels[key] = v;
          continue;
        }
        if (path.startsWith("extensions.")) {
          const key = path.slice("extensions.".length);
          const v = next.extensions[key];
          if (v === undefined) delete out.extensions[key];
          else out.extensions[key] = v;
          continue;
        }
        switch (path) {
          case "labels":
            out.labels = { ...next.labels };
            break;
          case "extensions":
            out.extensions = { ...next.extensions };
            break;
          case "spec":
            out.spec = next.spec;
            break;
          case "image":
            out.image = next.image;
            break;
          case "snapshotkey":
            out.snapshotKey = next.snapshotKey;
            break;
          case "snapshotter":
            out.snapshotter = next.snapshotter;
            break;
          case "runtime":
            out.runtime = next.runtime;
            break;
          default:
            throw invalidArgument(`Cannot update field "${path}" of container "${cur.id}"`);
        }
      }
      const updated = normalize({ ...out, updatedAt: now() });
      validateContainer(updated);
      this.#write(ns, updated);
      return updated;
    });
  }

  delete(ns: string, id: string): void {
    if (id === "") throw invalidArgument("Container id must not be empty");
    this.#db.tx(() => {
      const res = this.#db.sql.prepare("DELETE FROM containers WHERE namespace = ? AND id = ?").run(ns, id);
      if (Number(res.changes) === 0) throw notFound(`Container "${id}" in namespace "${ns}": not found`);
      this.#db.markDirty();
    });
  }

  #row(ns: string, id: string): Row | undefined {
    return this.#db.prepareBigInts(`SELECT ${COLUMNS} FROM containers WHERE namespace = ? AND id = ?`)
      .get(ns, id) as Row | undefined;
  }

  #write(ns: string, c: Container): void {
    this.#db.sql.prepare(
      `INSERT INTO containers (namespace, ${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (namespace, id) DO UPDATE SET labels = excluded.labels, image = excluded.image,
         runtime_name = excluded.runtime_name, runtime_options_type = excluded.runtime_options_type,
         runtime_options = excluded.runtime_options, spec_type = excluded.spec_type, spec = excluded.spec,
         snapshotter = excluded.snapshotter, snapshot_key = excluded.snapshot_key,
         extensions = excluded.extensions, sandbox = excluded.sandbox, updated_ns = excluded.updated_ns`,
    ).run(
      ns,
      c.id,
      JSON.stringify(c.labels),
      c.image,
      c.runtime.name,
      c.runtime.options?.typeUrl ?? null,
      c.runtime.options?.value ?? null,
      c.spec?.typeUrl ?? null,
      c.spec?.value ?? null,
      c.snapshotter,
      c.snapshotKey,
      JSON.stringify(Object.fromEntries(
        Object.entries(c.extensions).map(([k, v]) => [k, { t: v.typeUrl, v: toBase64(v.value) }]),
      )),
      c.sandbox,
      c.createdAt,
      c.updatedAt,
    );
  }
}

/** containerd's metadata validation of a container record. */
function validateContainer(c: Container): void {
  try {
    validateIdentifier("container id", c.id);
  } catch (err) {
    throw invalidArgument(`Invalid container: ${(err as Error).message}`);
  }
  for (const k of Object.keys(c.extensions)) {
    if (k === "") throw invalidArgument(`Invalid container "${c.id}": extension keys must not be empty`);
  }
  validateLabels(c.labels);
  if (c.runtime.name === "") {
    throw invalidArgument(`Invalid container "${c.id}": the runtime name must be set`);
  }
  if (c.spec === undefined) throw invalidArgument(`Invalid container "${c.id}": the spec must be set`);
  if (c.snapshotKey !== "" && c.snapshotter === "") {
    throw invalidArgument(`Invalid container "${c.id}": the snapshotter must be set with a snapshot key`);
  }
}

function normalize<T extends ContainerInit>(c: T): T {
  const labels = Object.fromEntries(Object.entries(c.labels).filter(([, v]) => v !== ""));
  return { ...c, labels };
}

function toContainer(r: Row): Container {
  const ext = JSON.parse(r.extensions) as Record<string, { t: string; v: string }>;
  return {
    id: r.id,
    labels: JSON.parse(r.labels),
    image: r.image,
    runtime: {
      name: r.runtime_name,
      ...(r.runtime_options_type !== null
        ? { options: { typeUrl: r.runtime_options_type, value: new Uint8Array(r.runtime_options ?? []) } }
        : {}),
    },
    ...(r.spec_type !== null ? { spec: { typeUrl: r.spec_type, value: new Uint8Array(r.spec ?? []) } } : {}),
    snapshotter: r.snapshotter,
    snapshotKey: r.snapshot_key,
    extensions: Object.fromEntries(
      Object.entries(ext).map(([k, e]) => [k, { typeUrl: e.t, value: fromBase64(e.v) }]),
    ),
    sandbox: r.sandbox,
    createdAt: r.created_ns,
    updatedAt: r.updated_ns,
  };
}

function toBase64(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s);
}

function fromBase64(s: string): Uint8Array {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}
