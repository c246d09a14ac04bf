/**
 * The snapshotter interface, after containerd's core/snapshots.Snapshotter, with the namespace as the
 * first argument of every call (containerd puts it in the context). overlayfs and native implement it
 * and share one conformance suite (testsuite.ts).
 */
import type { UnixNanos } from "../../base/clock.ts";
import type { Mount } from "../mount/mod.ts";

export type Kind = "view" | "active" | "committed";

export interface Info {
  /** The key of an active or view snapshot, the name of a committed one. */
  readonly name: string;
  /** The committed snapshot this one is based on; "" for none. */
  readonly parent: string;
  readonly kind: Kind;
  readonly labels: Readonly<Record<string, string>>;
  readonly created: UnixNanos;
  readonly updated: UnixNanos;
}

export interface Usage {
  /** Bytes used on disk by this snapshot alone (not its parents). */
  readonly size: number;
  readonly inodes: number;
}

export interface PrepareOptions {
  /** Name of a committed snapshot to base this one on. */
  readonly parent?: string;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface CommitOptions {
  /** The active snapshot to commit. */
  readonly key: string;
  /** Labels of the committed snapshot (the active one's labels are not carried over, as in containerd). */
  readonly labels?: Readonly<Record<string, string>>;
}

export interface WalkOptions {
  /** containerd filter strings over name, parent, kind and labels; any of them may match. */
  readonly filters?: readonly string[];
  readonly signal?: AbortSignal;
}

export interface Snapshotter {
  /** Throws notFound when the key does not exist. */
  stat(namespace: string, key: string): Promise<Info>;
  /**
   * Updates the mutable fields (labels). Without fieldpaths all labels are replaced; "labels" replaces
   * them too; "labels.<k>" sets or deletes one. Any other path is invalidArgument.
   */
  update(namespace: string, info: Info, options?: { fieldpaths?: readonly string[] }): Promise<Info>;
  usage(namespace: string, key: string): Promise<Usage>;
  /** Mounts of an active or view snapshot (failedPrecondition for a committed one). */
  mounts(namespace: string, key: string): Promise<Mount[]>;
  /** Creates a writable snapshot. alreadyExists for a taken key, notFound / invalidArgument for a bad parent. */
  prepare(namespace: string, key: string, options?: PrepareOptions): Promise<Mount[]>;
  /** Creates a read-only snapshot. */
  view(namespace: string, key: string, options?: PrepareOptions): Promise<Mount[]>;
  /** Turns an active snapshot into a committed one called `name`; the key stops existing. */
  commit(namespace: string, name: string, options: CommitOptions): Promise<void>;
  /** failedPrecondition while other snapshots have this one as their parent. */
  remove(namespace: string, key: string): Promise<void>;
  walk(namespace: string, fn: (info: Info) => void | Promise<void>, options?: WalkOptions): Promise<void>;
  /** Removes on-disk directories that no snapshot refers to (left by crashes or failed removals). */
  cleanup(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A snapshotter whose records live in the daemon's metadata database can be listed and removed
 * without yielding: the garbage collector marks and sweeps in one transaction that way, so no write
 * lands between its decision and its removals.
 */
export interface CollectableSnapshotter extends Snapshotter {
  /** Every snapshot of the namespace, read inside the caller's transaction. */
  walkSync(namespace: string): Info[];
  /**
   * Removes the snapshot's record and moves its folder aside, inside the caller's transaction (so a
   * failure undoes both); the function returned deletes the moved folder afterwards.
   */
  removeSync(namespace: string, key: string): () => Promise<void>;
  /** Keys of the namespace whose prepare or view has not returned yet: GC keeps them. */
  creatingSync?(namespace: string): readonly string[];
}

export function isCollectable(s: Snapshotter): s is CollectableSnapshotter {
  const c = s as Partial<CollectableSnapshotter>;
  return typeof c.walkSync === "function" && typeof c.removeSync === "function";
}
