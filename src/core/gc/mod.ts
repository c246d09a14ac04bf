import type { ContentStore } from "../content/mod.ts";
import type { ImageStore } from "../images/mod.ts";
import type { LeaseManager } from "../leases/mod.ts";
import type { Snapshotter } from "../snapshots/mod.ts";
import type { Logger } from "../log/mod.ts";

/**
 * Garbage collection as containerd does it: mark everything reachable from the roots of each
 * namespace, then remove unreachable content and committed snapshots.
 *
 * Roots: image targets, lease resources (unexpired leases), objects labelled `containerd.io/gc.root`,
 * active and view snapshots (someone is using them), and whatever extra root providers report
 * (containers name their snapshot). Edges: `containerd.io/gc.ref.content*` and
 * `containerd.io/gc.ref.snapshot.<snapshotter>*` labels on content and snapshots, and snapshot parents.
 */
export interface GcDeps {
  content: ContentStore;
  images: ImageStore;
  leases: LeaseManager;
  snapshotters: Map<string, Snapshotter>;
  /** Namespaces to collect in. */
  namespaces: () => string[];
  log?: Logger;
}

/** A reference to something collectable: content by digest, or a snapshot by snapshotter and key. */
export type GcRef = { kind: "content"; digest: string } | {
  kind: "snapshot";
  snapshotter: string;
  key: string;
};

/** Extra roots, e.g. the containers store's snapshots. */
export type RootProvider = (namespace: string) => GcRef[] | Promise<GcRef[]>;

export interface GcResult {
  removedContent: number;
  removedSnapshots: number;
  expiredLeases: number;
  ms: number;
}

const rootLabel = "containerd.io/gc.root";
const expireLabel = "containerd.io/gc.expire";
const contentRef = "containerd.io/gc.ref.content";
const snapshotRef = "containerd.io/gc.ref.snapshot.";

export class GarbageCollector {
  readonly #deps: GcDeps;
  readonly #providers: RootProvider[] = [];
  #running?: Promise<GcResult>;
  #again = false;

  constructor(deps: GcDeps) {
    this.#deps = deps;
  }

  addRootProvider(provider: RootProvider): void {
    this.#providers.push(provider);
  }

  /**
   * Runs a collection, or joins the one under way; a request that arrives during a run gets a
   * fresh run after it, so whatever it deleted is collected.
   */
  scheduleAndWait(_signal?: AbortSignal): Promise<GcResult> {
    if (this.#running) {
      this.#again = true;
      return this.#running.then(() => this.scheduleAndWait());
    }
    this.#running = this.#collect().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #collect(): Promise<GcResult> {
    this.#again = false;
    const t0 = performance.now();
    const result: GcResult = { removedContent: 0, removedSnapshots: 0, expiredLeases: 0, ms: 0 };
    for (const ns of this.#deps.namespaces()) await this.#collectNamespace(ns, result);
    result.ms = Math.round(performance.now() - t0);
    if (result.removedContent || result.removedSnapshots || result.expiredLeases) {
      this.#deps.log?.info("garbage collected", { ...result });
    }
    return result;
  }

  async #collectNamespace(ns: string, result: GcResult): Promise<void> {
    const { content, images, leases, snapshotters } = this.#deps;
    const now = Date.now();
    for (const lease of await leases.list(ns)) {
      const expire = lease.labels[expireLabel];
      if (expire && Date.parse(expire) < now) {
        await leases.delete(ns, lease.id);
        result.expiredLeases++;
      }
    }

    const blobs = new Map((await content.walk(ns)).map((i) => [i.digest, i]));
    const snaps = new Map<string, Map<string, SnapshotNode>>();
    for (const [name, sn] of snapshotters) {
      const byKey = new Map<string, SnapshotNode>();
      await sn.walk(ns, (info) => {
        byKey.set(info.name, { parent: info.parent, kind: info.kind, labels: info.labels });
      });
      snaps.set(name, byKey);
    }

    const marked = new Set<string>();
    const queue: GcRef[] = [];
    const push = (ref: GcRef) => {
      const id = refId(ref);
      if (!marked.has(id)) {
        marked.add(id);
        queue.push(ref);
      }
    };
    for (const img of await images.list(ns)) push({ kind: "content", digest: img.target.digest });
    for (const r of leases.leasedResources(ns)) {
      if (r.type === "content") push({ kind: "content", digest: r.id });
      else if (r.type.startsWith("snapshots/")) {
        push({ kind: "snapshot", snapshotter: r.type.slice(10), key: r.id });
      }
    }
    for (const [digest, info] of blobs) {
      if (info.labels[rootLabel] !== undefined) push({ kind: "content", digest });
    }
    for (const [snapshotter, byKey] of snaps) {
      for (const [key, node] of byKey) {
        if (node.kind !== "committed" || node.labels[rootLabel] !== undefined) {
          push({ kind: "snapshot", snapshotter, key });
        }
      }
    }
    for (const provider of this.#providers) for (const ref of await provider(ns)) push(ref);

    while (queue.length > 0) {
      const ref = queue.pop()!;
      let labels: Readonly<Record<string, string>> | undefined;
      if (ref.kind === "content") labels = blobs.get(ref.digest)?.labels;
      else {
        const node = snaps.get(ref.snapshotter)?.get(ref.key);
        if (node?.parent) push({ kind: "snapshot", snapshotter: ref.snapshotter, key: node.parent });
        labels = node?.labels;
      }
      for (const [k, v] of Object.entries(labels ?? {})) {
        if (k.startsWith(contentRef)) push({ kind: "content", digest: v });
        else if (k.startsWith(snapshotRef)) {
          const snapshotter = k.slice(snapshotRef.length).split("/")[0]!.split(".")[0]!;
          push({ kind: "snapshot", snapshotter, key: v });
        }
      }
    }

    for (const digest of blobs.keys()) {
      if (marked.has(refId({ kind: "content", digest }))) continue;
      try {
        await content.delete(ns, digest);
        result.removedContent++;
      } catch (err) {
        this.#deps.log?.warn("cannot remove content", {
          namespace: ns,
          digest,
          error: (err as Error).message,
        });
      }
    }
    for (const [snapshotter, byKey] of snaps) {
      const sn = snapshotters.get(snapshotter)!;
      // Children before parents: a snapshot with children cannot be removed.
      for (const key of leavesFirst(byKey)) {
        if (marked.has(refId({ kind: "snapshot", snapshotter, key }))) continue;
        try {
          await sn.remove(ns, key);
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
}

interface SnapshotNode {
  parent: string;
  kind: string;
  labels: Readonly<Record<string, string>>;
}

function refId(ref: GcRef): string {
  return ref.kind === "content" ? `c:${ref.digest}` : `s:${ref.snapshotter}:${ref.key}`;
}

function leavesFirst(byKey: Map<string, SnapshotNode>): string[] {
  const depth = (key: string): number => {
    let d = 0;
    for (let k: string | undefined = key; k && d < 10_000; k = byKey.get(k)?.parent) d++;
    return d;
  };
  return [...byKey.keys()].sort((a, b) => depth(b) - depth(a));
}
