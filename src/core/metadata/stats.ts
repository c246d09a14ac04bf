/**
 * Counts and sizes over the metadata database, for the daemon's metrics: one aggregate query per table
 * and no disk walk, so a scrape stays cheap however many objects there are. Snapshot sizes are those
 * recorded at commit; an active snapshot's writes are not counted until it is committed.
 */
import type { MetadataDB } from "./db.ts";

export interface MetadataStats {
  readonly containers: readonly { namespace: string; count: number }[];
  readonly images: readonly { namespace: string; count: number }[];
  /** Blobs as each namespace sees them (a blob shared by two namespaces counts in both). */
  readonly content: readonly { namespace: string; blobs: number; bytes: number }[];
  /** Distinct blobs on disk. */
  readonly contentStore: { blobs: number; bytes: number };
  readonly snapshots: readonly { snapshotter: string; kind: string; count: number; bytes: number }[];
  /** CRI pod sandboxes: containers labelled as containerd's CRI labels them. */
  readonly sandboxes: readonly { namespace: string; id: string }[];
}

const CRI_KIND_LABEL = "io.cri-containerd.kind";

/** Reads every figure; the queries are synchronous, so no write of this daemon comes between them. */
export function metadataStats(db: MetadataDB): MetadataStats {
  const all = (sql: string) => db.sql.prepare(sql).all() as Record<string, string | number>[];
  const has = (table: string) =>
    db.sql.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
  const num = (v: unknown) => Number(v ?? 0);
  const containers = has("containers")
    ? all("SELECT namespace, COUNT(*) AS n FROM containers GROUP BY namespace")
    : [];
  const sandboxes = has("containers")
    ? all(
      `SELECT namespace, id FROM containers WHERE json_extract(labels, '$."${CRI_KIND_LABEL}"') = 'sandbox'`,
    )
    : [];
  const images = has("images") ? all("SELECT namespace, COUNT(*) AS n FROM images GROUP BY namespace") : [];
  const content = has("content_blobs")
    ? all("SELECT namespace, COUNT(*) AS n, SUM(size) AS bytes FROM content_blobs GROUP BY namespace")
    : [];
  const store = has("content_blobs")
    ? all(
      `SELECT COUNT(*) AS n, SUM(size) AS bytes FROM
       (SELECT MAX(size) AS size FROM content_blobs GROUP BY digest)`,
    )[0]
    : undefined;
  const snapshots = has("snapshots")
    ? all(
      "SELECT snapshotter, kind, COUNT(*) AS n, SUM(size) AS bytes FROM snapshots GROUP BY snapshotter, kind",
    )
    : [];
  return {
    containers: containers.map((r) => ({ namespace: String(r.namespace), count: num(r.n) })),
    images: images.map((r) => ({ namespace: String(r.namespace), count: num(r.n) })),
    content: content.map((r) => ({ namespace: String(r.namespace), blobs: num(r.n), bytes: num(r.bytes) })),
    contentStore: { blobs: num(store?.n), bytes: num(store?.bytes) },
    snapshots: snapshots.map((r) => ({
      snapshotter: String(r.snapshotter),
      kind: String(r.kind),
      count: num(r.n),
      bytes: num(r.bytes),
    })),
    sandboxes: sandboxes.map((r) => ({ namespace: String(r.namespace), id: String(r.id) })),
  };
}
