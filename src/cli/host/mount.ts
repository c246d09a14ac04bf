/**
 * Where the CLI mounts on this host, as ctr does: an image's snapshot on a target folder (`images
 * mount`), and a snapshot briefly and read-only to read the users and groups of a container's rootfs.
 */
import { mountAll, unmountAll, withTempMount } from "../../core/mount/mod.ts";
import { type UserDb, userDbFromRootfs } from "../../oci/user.ts";

/** A mount as the Snapshots service returns it. */
export interface SnapshotMount {
  readonly type: string;
  readonly source: string;
  readonly target?: string;
  readonly options: readonly string[];
}

/** The snapshot's mounts made read-only where that is possible (containerd's tryReadonlyMounts). */
export function readonlyMounts(mounts: readonly SnapshotMount[]): SnapshotMount[] {
  const out = mounts.map((m) => ({ type: m.type, source: m.source, options: [...m.options] }));
  if (out.length === 1 && out[0]!.type === "overlay") out[0]!.options.push("ro");
  return out;
}

/** The users and groups of a snapshot's rootfs, read through a temporary read-only mount. */
export function userDbOf(mounts: readonly SnapshotMount[]): Promise<UserDb> {
  return withTempMount(readonlyMounts(mounts), (root) => userDbFromRootfs(root));
}

/** Runs `fn` with the snapshot mounted read-only on a temporary folder, unmounted afterwards. */
export function withSnapshotMounted<T>(
  mounts: readonly SnapshotMount[],
  fn: (root: string) => Promise<T>,
): Promise<T> {
  return withTempMount(readonlyMounts(mounts), fn);
}

/** Mounts a snapshot's mounts on `target`. */
export function mountSnapshot(mounts: readonly SnapshotMount[], target: string): void {
  mountAll(mounts, target);
}

/** Unmounts whatever mountSnapshot() mounted on `target`. */
export function unmountSnapshot(target: string): void {
  unmountAll(target);
}
