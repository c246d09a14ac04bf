import { now, type UnixNanos } from "../../base/clock.ts";
import type { Descriptor } from "../../oci/image.ts";
import { alreadyExists, invalidArgument, notFound } from "../../base/errors.ts";
import { validateDigest } from "../../oci/digest.ts";
import { applyLabelPaths, validateLabels } from "../content/labels.ts";
import { type Adaptor, labelsAdaptor, objectAdaptor, parseFilters } from "../filters/mod.ts";
import type { MetadataDB } from "../metadata/db.ts";

export interface Image {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly target: Descriptor;
  readonly createdAt: UnixNanos;
  readonly updatedAt: UnixNanos;
}

/** What callers provide to create or update an image: times are the store's. */
export type ImageInit = Omit<Image, "createdAt" | "updatedAt" | "labels"> & {
  readonly labels?: Readonly<Record<string, string>>;
};

/** The schema steps, appended and never edited: the first n are the schema a database at version n has. */
export const MIGRATIONS = [
  `CREATE TABLE images (
     namespace TEXT NOT NULL,
     name TEXT NOT NULL,
     labels TEXT NOT NULL DEFAULT '{}',
     target_media_type TEXT NOT NULL,
     target_digest TEXT NOT NULL,
     target_size INTEGER NOT NULL,
     target_annotations TEXT NOT NULL DEFAULT '{}',
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (namespace, name)
   ) WITHOUT ROWID;
   CREATE INDEX images_by_target ON images (namespace, target_digest);`,
  // Times were Date.now() milliseconds; they become nanoseconds, as containerd keeps them.
  `ALTER TABLE images RENAME COLUMN created_at TO created_ns;
   ALTER TABLE images RENAME COLUMN updated_at TO updated_ns;
   UPDATE images SET created_ns = created_ns * 1000000, updated_ns = updated_ns * 1000000;`,
];

interface Row {
  name: string;
  labels: string;
  target_media_type: string;
  target_digest: string;
  target_size: bigint;
  target_annotations: string;
  created_ns: bigint;
  updated_ns: bigint;
}

const COLUMNS =
  "name, labels, target_media_type, target_digest, target_size, target_annotations, created_ns, updated_ns";

/** containerd's image filter fields: name, target.digest, target.mediatype, labels.*, annotations.*. */
export function adaptImage(image: Image): Adaptor {
  return objectAdaptor({
    name: image.name,
    target: objectAdaptor({ digest: image.target.digest, mediatype: image.target.mediaType }),
    labels: labelsAdaptor(image.labels),
    annotations: labelsAdaptor(image.target.annotations),
  });
}

/** Named image records (containerd's images.Store) in the metadata database, per namespace. */
export class ImageStore {
  readonly #db: MetadataDB;

  constructor(db: MetadataDB) {
    this.#db = db;
    db.migrate("images", MIGRATIONS);
  }

  get(ns: string, name: string): Promise<Image> {
    return Promise.resolve().then(() => this.#get(ns, name));
  }

  /** The namespace's images matching `filters`, by name. */
  list(ns: string, options: { filters?: readonly string[] } = {}): Promise<Image[]> {
    return Promise.resolve().then(() => this.listSync(ns, options));
  }

  /** list() without yielding, for the garbage collector's transaction. */
  listSync(ns: string, options: { filters?: readonly string[] } = {}): Image[] {
    const filter = parseFilters(options.filters ?? []);
    const rows = this.#db.prepareBigInts(`SELECT ${COLUMNS} FROM images WHERE namespace = ? ORDER BY name`)
      .all(ns) as unknown as Row[];
    return rows.map(toImage).filter((img) => filter.match(adaptImage(img)));
  }

  create(ns: string, image: ImageInit): Promise<Image> {
    return Promise.resolve().then(() => {
      const createdAt = now();
      const img = normalize({ ...image, createdAt, updatedAt: createdAt });
      return this.#db.tx(() => {
        if (this.#row(ns, img.name) !== undefined) {
          throw alreadyExists(`Image ${JSON.stringify(img.name)} already exists in namespace ${ns}`);
        }
        this.#write(ns, img);
        return img;
      });
    });
  }

  /**
   * Updates an image. `fieldpaths` select what changes: "labels", "labels.<key>", "target",
   * "annotations", "annotations.<key>"; without any, labels and target are replaced.
   */
  update(ns: string, image: ImageInit, options: { fieldpaths?: readonly string[] } = {}): Promise<Image> {
    return Promise.resolve().then(() => {
      if (image.name === "") throw invalidArgument("Cannot update an image: the name is required");
      return this.#db.tx(() => {
        const current = this.#get(ns, image.name);
        let labels = { ...current.labels };
        let target: Descriptor = current.target;
        const paths = options.fieldpaths ?? [];
        if (paths.length === 0) {
          labels = { ...image.labels };
          target = image.target;
        }
        for (const path of paths) {
          const nextLabels = applyLabelPaths(labels, image.labels ?? {}, path);
          if (nextLabels !== undefined) {
            labels = nextLabels;
          } else if (path === "target") {
            target = image.target;
          } else if (path === "annotations" || path.startsWith("annotations.")) {
            const annotations = applyLabelPaths(
              target.annotations ?? {},
              image.target.annotations ?? {},
              "labels" + path.slice("annotations".length),
            )!;
            target = { ...target, annotations };
          } else {
            throw invalidArgument(
              `Cannot update field ${JSON.stringify(path)} on image ${JSON.stringify(image.name)}`,
            );
          }
        }
        const updated = normalize({
          name: image.name,
          labels,
          target,
          createdAt: current.createdAt,
          updatedAt: now(),
        });
        this.#write(ns, updated);
        return updated;
      });
    });
  }

  /** Deletes an image; with `target`, only if the image still points at that digest. */
  delete(ns: string, name: string, options: { target?: string } = {}): Promise<void> {
    return Promise.resolve().then(() =>
      this.#db.tx(() => {
        const current = this.#get(ns, name);
        if (options.target && current.target.digest !== options.target) {
          throw notFound(
            `Image ${JSON.stringify(name)} has target ${current.target.digest}, not ${options.target}`,
          );
        }
        this.#db.sql.prepare("DELETE FROM images WHERE namespace = ? AND name = ?").run(ns, name);
        this.#db.markDirty();
      })
    );
  }

  #get(ns: string, name: string): Image {
    const row = this.#row(ns, name);
    if (row === undefined) throw notFound(`Image ${JSON.stringify(name)} not found in namespace ${ns}`);
    return toImage(row);
  }

  #row(ns: string, name: string): Row | undefined {
    return this.#db.prepareBigInts(`SELECT ${COLUMNS} FROM images WHERE namespace = ? AND name = ?`).get(
      ns,
      name,
    ) as
      | Row
      | undefined;
  }

  #write(ns: string, img: Image): void {
    this.#db.sql.prepare(
      `INSERT INTO images (namespace, ${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (namespace, name) DO UPDATE SET labels = excluded.labels,
         target_media_type = excluded.target_media_type, target_digest = excluded.target_digest,
         target_size = excluded.target_size, target_annotations = excluded.target_annotations,
         updated_ns = excluded.updated_ns`,
    ).run(
      ns,
      img.name,
      JSON.stringify(img.labels),
      img.target.mediaType,
      img.target.digest,
      img.target.size,
      JSON.stringify(img.target.annotations),
      img.createdAt,
      img.updatedAt,
    );
  }
}

/** Validates as containerd does (name, labels, target digest, size > 0, media type) and drops empty labels. */
function normalize(img: ImageInit & { createdAt: UnixNanos; updatedAt: UnixNanos }): Image {
  if (img.name === "") throw invalidArgument("Invalid image: the name must not be empty");
  const labels = dropEmpty(img.labels ?? {});
  validateLabels(labels);
  const t = img.target;
  try {
    validateDigest(t.digest);
  } catch (err) {
    throw invalidArgument(`Invalid image ${JSON.stringify(img.name)}: target ${(err as Error).message}`);
  }
  if (!(t.size > 0)) {
    throw invalidArgument(`Invalid image ${JSON.stringify(img.name)}: target size must be greater than zero`);
  }
  if (t.mediaType === "") {
    throw invalidArgument(`Invalid image ${JSON.stringify(img.name)}: target media type must be set`);
  }
  return {
    name: img.name,
    labels,
    target: {
      mediaType: t.mediaType,
      digest: t.digest,
      size: t.size,
      annotations: dropEmpty(t.annotations ?? {}),
    },
    createdAt: img.createdAt,
    updatedAt: img.updatedAt,
  };
}

function toImage(row: Row): Image {
  return {
    name: row.name,
    labels: JSON.parse(row.labels) as Record<string, string>,
    target: {
      mediaType: row.target_media_type,
      digest: row.target_digest,
      size: Number(row.target_size),
      annotations: JSON.parse(row.target_annotations) as Record<string, string>,
    },
    createdAt: row.created_ns,
    updatedAt: row.updated_ns,
  };
}

function dropEmpty(m: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).filter(([, v]) => v !== ""));
}
