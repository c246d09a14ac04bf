/** Mounts as the Snapshots service returns them and as Tasks/Create takes a task's rootfs. */

/** A snapshot's mount as the Snapshots service returns it. */
export interface SnapshotMount {
  readonly type: string;
  readonly source: string;
  readonly target?: string;
  readonly options: readonly string[];
}

/** Mounts as a task's rootfs in Tasks/Create. */
export function rootfsOf(mounts: readonly SnapshotMount[]) {
  return mounts.map((m) => ({
    type: m.type,
    source: m.source,
    target: m.target ?? "",
    options: [...m.options],
  }));
}
