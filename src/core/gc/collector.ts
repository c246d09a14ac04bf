import type { Info as ContentInfo, IngestRecord } from "../content/mod.ts";
import type { Image } from "../images/mod.ts";
import type { Lease, LeaseResource } from "../leases/mod.ts";
import type { MetadataDB } from "../metadata/db.ts";
import type { CollectableSnapshotter, Snapshotter } from "../snapshots/mod.ts";
import type { Logger } from "../../base/log.ts";

/**
 * Garbage collection as containerd does it: mark everything reachable from the roots of each
 * namespace, then remove unreachable content and snapshots.
 *
 * Roots: image targets, unexpired leases' resources, objects labelled `containerd.io/gc.root`,
 * containers' snapshots, snapshots a snapshotter is still creating, ingests a writer has open, and
 * ingests no lease ever held until their day is over. An ingest a lease held is aborted once no lease
 * does (containerd's ResourceIngest): a pull a crash cut short leaves none behind once its lease goes. Active and view snapshots are
 * not roots of their own (containerd 1.6's scanRoots): one that no container, lease or gc.root keeps,
 * e.g. left by a `ctr run` whose container was refused, is collected like any other. Edges:
 * `containerd.io/gc.ref.content*` and `containerd.io/gc.ref.snapshot.<snapshotter>*` labels on images,
 * containers, content and snapshots, and snapshot parents.
 *
 * Mark and sweep of the records run in one metadata transaction, as containerd runs them under its
 * database's write lock: a lease, image or label added while a collection runs is either seen by the
 * mark or made after the sweep, never in between. Folders of removed snapshots are deleted afterwards.
 *
 * Snapshotters whose records live elsewhere (proxy plugins: another process holds them) are listed
 * before the transaction, marked with the rest inside it, and their unreachable snapshots removed
 * through their API after it, leaves first. One that cannot be listed (its remote is down) keeps
 * everything until a later collection. A content proxy is swept the same way after the transaction.
 */
export interface GcDeps {
  /** The database the stores below keep their records in. */
  db: MetadataDB;
  content: {
    walkSync(ns: string): ContentInfo[];
    deleteSync(ns: string, digest: string): void;
    ingestsSync(ns: string): IngestRecord[];
    abortSync(ns: string, ref: string): void;
    /**
     * Removes from a backend behind a socket (a content proxy) what the transaction left no namespace
     * holding; the local folder's blobs and ingests go inside the transaction.
     */
    sweep?(): Promise<number>;
  };
  images: { listSync(ns: string): Image[] };
  leases: {
    listSync(ns: string): Lease[];
    deleteSync(ns: string, id: string): void;
    leasedResources(ns: string): LeaseResource[];
  };
  /** Containers keep their snapshot and whatever their gc.ref labels name. */
  containers?: { list(ns: string): readonly ContainerRefs[] };
  snapshotters: ReadonlyMap<string, CollectableSnapshotter>;
  /** Snapshotters with records of their own (proxy plugins), collected through their API. */
  remoteSnapshotters?: ReadonlyMap<string, Snapshotter>;
  /** Namespaces to collect in. */
  namespaces: () => string[];
  log?: Logger;
}

/** What the collector reads of a container. */
export interface ContainerRefs {
  readonly snapshotter: string;
  readonly snapshotKey: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** A reference to something collectable: content by digest, or a snapshot by snapshotter and key. */
export type GcRef = { kind: "content"; digest: string } | {
  kind: "snapshot";
  snapshotter: string;
  key: string;
};

export interface GcResult {
  removedContent: number;
  removedSnapshots: number;
  expiredLeases: number;
  /** Time spent in the metadata transaction, when writers wait (containerd's MetaD, its "pause"). */
  pauseMs: number;
  /** Time of the whole collection, folder removal included. */
  ms: number;
}

/** The part of a collector the scheduler drives. */
export interface Collector {
  collect(): Promise<GcResult>;
}

const rootLabel = "containerd.io/gc.root";
const expireLabel = "containerd.io/gc.expire";
const contentRef = "containerd.io/gc.ref.content";
const snapshotRef = "containerd.io/gc.ref.snapshot.";
/** The lease resource type of an ingest, whose id is its ref. */
const leasedIngest = "ingests";
/** Lease resource types of snapshots are `snapshots/<snapshotter>`. */
const leasedSnapshotPrefix = "snapshots/";

/** A remote snapshotter's snapshot the sweep chose, removed after the transaction. */
interface RemoteRemoval {
  readonly ns: string;
  readonly snapshotter: string;
  readonly key: string;
}

/** What one collection gathers while it sweeps its namespaces. */
interface Sweep {
  readonly result: GcResult;
  readonly cleanups: (() => Promise<void>)[];
  /** This namespace's remote snapshots, by snapshotter (absent: none could be listed). */
  readonly remote: ReadonlyMap<string, Map<string, SnapshotNode>> | undefined;
  readonly remoteRemovals: RemoteRemoval[];
}

interface SnapshotNode {
  parent: string;
  kind: string;
  labels: Readonly<Record<string, string>>;
}

export class GarbageCollector implements Collector {
  readonly #deps: GcDeps;

  constructor(deps: GcDeps) {
    this.#deps = deps;
  }

  /** Runs one collection now. Callers schedule it (GcScheduler) rather than call it on every change. */
  async collect(): Promise<GcResult> {
    const t0 = performance.now();
    const result: GcResult = { removedContent: 0, removedSnapshots: 0, expiredLeases: 0, pauseMs: 0, ms: 0 };
    const cleanups: (() => Promise<void>)[] = [];
    const remote = await this.#walkRemote();
    const remoteRemovals: RemoteRemoval[] = [];
    this.#deps.db.collect(() => {
      for (const ns of this.#deps.namespaces()) {
        this.#collectNamespace(ns, { result, cleanups, remote: remote.get(ns), remoteRemovals });
      }
    });
    result.pauseMs = round(performance.now() - t0);
    await Promise.all(cleanups.map((c) => c()));
    result.removedSnapshots += await this.#removeRemote(remoteRemovals);
    await this.#sweepContent();
    result.ms = round(performance.now() - t0);
    if (result.removedContent || result.removedSnapshots || result.expiredLeases) {
      this.#deps.log?.info("garbage collected", { ...result });
    }
    return result;
  }

  /** Every snapshot of the remote snapshotters, by namespace and snapshotter; those down are left out. */
  async #walkRemote(): Promise<Map<string, Map<string, Map<string, SnapshotNode>>>> {
    const out = new Map<string, Map<string, Map<string, SnapshotNode>>>();
    if (!this.#deps.remoteSnapshotters?.size) return out;
    for (const ns of this.#deps.namespaces()) {
      const byName = new Map<string, Map<string, SnapshotNode>>();
      for (const [name, sn] of this.#deps.remoteSnapshotters) {
        const nodes = new Map<string, SnapshotNode>();
        try {
          await sn.walk(ns, (info) => void nodes.set(info.name, info));
          byName.set(name, nodes);
        } catch (err) {
          this.#deps.log?.warn("cannot list a snapshotter: its snapshots are kept this time", {
            namespace: ns,
            snapshotter: name,
            error: (err as Error).message,
          });
        }
      }
      out.set(ns, byName);
    }
    return out;
  }

  /** Sweeps a content proxy; one that is down keeps its blobs until a later collection. */
  async #sweepContent(): Promise<void> {
    try {
      const n = await this.#deps.content.sweep?.();
      if (n) this.#deps.log?.debug("removed blobs from the content backend", { blobs: n });
    } catch (err) {
      this.#deps.log?.warn("cannot sweep the content backend: its blobs are kept this time", {
        error: (err as Error).message,
      });
    }
  }

  /** Removes what the sweep chose, in order (children first); returns how many went. */
  async #removeRemote(removals: readonly RemoteRemoval[]): Promise<number> {
    let n = 0;
    for (const { ns, snapshotter, key } of removals) {
      try {
        await this.#deps.remoteSnapshotters!.get(snapshotter)!.remove(ns, key);
        n++;
      } catch (err) {
        this.#deps.log?.warn("cannot remove snapshot", {
          namespace: ns,
          snapshotter,
          key,
          error: (err as Error).message,
        });
      }
    }
    return n;
  }

  #collectNamespace(ns: string, sweep: Sweep): void {
    const { result, cleanups } = sweep;
    result.expiredLeases += this.#expireLeases(ns);
    const blobs = new Map(this.#deps.content.walkSync(ns).map((i) => [i.digest, i]));
    const snaps = new Map<string, Map<string, SnapshotNode>>();
    for (const [name, sn] of this.#deps.snapshotters) {
      snaps.set(name, new Map(sn.walkSync(ns).map((i) => [i.name, i])));
    }
    for (const [name, nodes] of sweep.remote ?? []) snaps.set(name, nodes);
    const marked = this.#mark(ns, blobs, snaps);
    for (const digest of blobs.keys()) {
      if (marked.has(refId({ kind: "content", digest }))) continue;
      try {
        this.#deps.content.deleteSync(ns, digest);
        result.removedContent++;
      } catch (err) {
        this.#deps.log?.warn("cannot remove content", {
          namespace: ns,
          digest,
          error: (err as Error).message,
        });
      }
    }
    this.#abortIngests(ns);
    for (const [snapshotter, byKey] of snaps) {
      const sn = this.#deps.snapshotters.get(snapshotter);
      // Children before parents: a snapshot with children cannot be removed.
      for (const key of leavesFirst(byKey)) {
        if (marked.has(refId({ kind: "snapshot", snapshotter, key }))) continue;
        if (!sn) {
          sweep.remoteRemovals.push({ ns, snapshotter, key });
          continue;
        }
        try {
          cleanups.push(sn.removeSync(ns, key));
          result.removedSnapshots++;
        } catch (err) {
          this.#deps.log?.warn("cannot remove snapshot", {
            namespace: ns,
            snapshotter,
            key,
            error: (err as Error).message,
          });
        }
      }
    }
  }

  /** Aborts the namespace's ingests that no lease holds, no writer has open and no day keeps. */
  #abortIngests(ns: string): void {
    const leased = new Set(
      this.#deps.leases.leasedResources(ns).filter((r) => r.type === leasedIngest).map((r) => r.id),
    );
    const now = BigInt(Date.now()) * 1_000_000n;
    for (const ingest of this.#deps.content.ingestsSync(ns)) {
      if (ingest.writing || leased.has(ingest.ref)) continue;
      if (ingest.expiresAt !== undefined && ingest.expiresAt > now) continue;
      try {
        this.#deps.content.abortSync(ns, ingest.ref);
        this.#deps.log?.info("aborted ingest", { namespace: ns, ref: ingest.ref });
      } catch (err) {
        this.#deps.log?.warn("cannot abort ingest", {
          namespace: ns,
          ref: ingest.ref,
          error: (err as Error).message,
        });
      }
    }
  }

  /** Deletes the namespace's leases whose `containerd.io/gc.expire` time has passed. */
  #expireLeases(ns: string): number {
    const now = Date.now();
    let n = 0;
    for (const lease of this.#deps.leases.listSync(ns)) {
      const expire = lease.labels[expireLabel];
      if (expire && Date.parse(expire) < now) {
        this.#deps.leases.deleteSync(ns, lease.id);
        n++;
      }
    }
    return n;
  }

  /** Everything reachable from the namespace's roots, as refId strings. */
  #mark(
    ns: string,
    blobs: ReadonlyMap<string, ContentInfo>,
    snaps: ReadonlyMap<string, ReadonlyMap<string, SnapshotNode>>,
  ): Set<string> {
    const marked = new Set<string>();
    const queue: GcRef[] = [];
    const push = (ref: GcRef) => {
      const id = refId(ref);
      if (!marked.has(id)) {
        marked.add(id);
        queue.push(ref);
      }
    };
    for (const img of this.#deps.images.listSync(ns)) {
      push({ kind: "content", digest: img.target.digest });
      labelRefs(img.labels, push);
    }
    for (const r of this.#deps.leases.leasedResources(ns)) {
      if (r.type === "content") push({ kind: "content", digest: r.id });
      else if (r.type.startsWith(leasedSnapshotPrefix)) {
        push({ kind: "snapshot", snapshotter: r.type.slice(leasedSnapshotPrefix.length), key: r.id });
      }
    }
    for (const c of this.#deps.containers?.list(ns) ?? []) {
      if (c.snapshotter && c.snapshotKey) {
        push({ kind: "snapshot", snapshotter: c.snapshotter, key: c.snapshotKey });
      }
      labelRefs(c.labels, push);
    }
    for (const [digest, info] of blobs) {
      if (info.labels[rootLabel] !== undefined) push({ kind: "content", digest });
    }
    for (const [snapshotter, byKey] of snaps) {
      for (const [key, node] of byKey) {
        if (node.labels[rootLabel] !== undefined) push({ kind: "snapshot", snapshotter, key });
      }
      // Its row exists before its prepare returns to a caller that has yet to reference it.
      for (const key of this.#deps.snapshotters.get(snapshotter)?.creatingSync?.(ns) ?? []) {
        push({ kind: "snapshot", snapshotter, key });
      }
    }

    while (queue.length > 0) {
      const ref = queue.pop()!;
      if (ref.kind === "content") {
        labelRefs(blobs.get(ref.digest)?.labels ?? {}, push);
        continue;
      }
      const node = snaps.get(ref.snapshotter)?.get(ref.key);
      if (node?.parent) push({ kind: "snapshot", snapshotter: ref.snapshotter, key: node.parent });
      labelRefs(node?.labels ?? {}, push);
    }
    return marked;
  }
}

/** The references a label set makes, read as containerd's sendLabelRefs reads them. */
function labelRefs(labels: Readonly<Record<string, string>>, push: (ref: GcRef) => void): void {
  for (const [k, v] of Object.entries(labels)) {
    if (k.startsWith(contentRef)) {
      // `gc.ref.content`, `gc.ref.content.<name>` or `gc.ref.content/<name>`; not `gc.ref.contentx`.
      const sep = k.charAt(contentRef.length);
      if (sep === "" || sep === "." || sep === "/") push({ kind: "content", digest: v });
    } else if (k.startsWith(snapshotRef)) {
      const snapshotter = k.slice(snapshotRef.length).split("/")[0]!;
      push({ kind: "snapshot", snapshotter, key: v });
    }
  }
}

function refId(ref: GcRef): string {
  return ref.kind === "content" ? `c:${ref.digest}` : `s:${ref.snapshotter}:${ref.key}`;
}

function leavesFirst(byKey: ReadonlyMap<string, SnapshotNode>): string[] {
  const depth = (key: string): number => {
    let d = 0;
    for (let k: string | undefined = key; k && d < 10_000; k = byKey.get(k)?.parent) d++;
    return d;
  };
  return [...byKey.keys()].sort((a, b) => depth(b) - depth(a));
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
