/**
 * The btrfs snapshotter, after containerd 1.6's snapshots/btrfs: every snapshot is a subvolume, a
 * child is a btrfs snapshot of its parent (no copy, no overlay), and a committed snapshot is a
 * read-only snapshot of the active one it was. Mounts are containerd's: `type: btrfs` of the root's
 * device with `subvolid=<id>` (and `ro` for a view).
 *
 * Layout, under `<root>/snapshots/<id>` as the other local snapshotters: `fs` is the subvolume of an
 * active or view snapshot, `committed` the read-only subvolume of a committed one.
 */
import type { MetadataDB } from "../metadata/db.ts";
import { BTRFS_FIRST_FREE_OBJECTID, type BtrfsSyscalls, btrfsSyscalls } from "../../../ffi/btrfs.ts";
import { SyscallError } from "../../../ffi/libc.ts";
import { failedPrecondition } from "../../base/errors.ts";
import { lookupMount, type Mount, selfMountInfo } from "../mount/mod.ts";
import { diffUsage, diskUsage } from "./disk_usage.ts";
import { LocalSnapshotter } from "./local.ts";
import type { CommitOptions, Usage } from "./snapshotter.ts";
import type { StoredSnapshot } from "./storage.ts";

const ENOTEMPTY = 39;

export interface BtrfsOptions {
  /** The block device the root's btrfs is mounted from: the source of every mount returned. */
  readonly device: string;
  readonly syscalls?: BtrfsSyscalls;
}

export class BtrfsSnapshotter extends LocalSnapshotter {
  readonly #device: string;
  readonly #sys: BtrfsSyscalls;

  constructor(root: string, db: MetadataDB, options: BtrfsOptions) {
    super(root, db, "btrfs");
    Deno.chmodSync(root, 0o700);
    this.#device = options.device;
    this.#sys = options.syscalls ?? btrfsSyscalls();
  }

  #subvolume(s: { id: string; kind: string }): string {
    return `${this.snapshotDir(s.id)}/${s.kind === "committed" ? "committed" : "fs"}`;
  }

  protected override populate(dir: string, snapshot: StoredSnapshot): void {
    const parent = snapshot.parentIds[0];
    if (parent === undefined) {
      this.#sys.subvolCreate(`${dir}/fs`);
      Deno.chmodSync(`${dir}/fs`, 0o755);
      return;
    }
    this.#sys.subvolSnapshot(this.#subvolume({ id: parent, kind: "committed" }), `${dir}/fs`, {
      readonly: snapshot.kind === "view",
    });
  }

  protected override contentDir(id: string): string {
    return `${this.snapshotDir(id)}/fs`;
  }

  protected override mountsOf(s: StoredSnapshot): Mount[] {
    const id = this.#sys.subvolId(this.#subvolume(s));
    const options = [`subvolid=${id}`];
    if (s.kind !== "active") options.push("ro");
    return [{ type: "btrfs", source: this.#device, options }];
  }

  override async usage(ns: string, key: string): Promise<Usage> {
    const { id, info, usage } = this.store.getInfo(ns, key);
    if (info.kind !== "active") return usage;
    return await this.#measure(id, this.#parentId(ns, info.parent));
  }

  #parentId(ns: string, parent: string): string | undefined {
    return parent === "" ? undefined : this.store.getInfo(ns, parent).id;
  }

  /** What an active snapshot adds over its parent: a snapshot shares the parent's extents. */
  #measure(id: string, parent: string | undefined): Promise<Usage> {
    if (parent === undefined) return diskUsage(this.contentDir(id));
    return diffUsage(this.#subvolume({ id: parent, kind: "committed" }), this.contentDir(id));
  }

  override async commit(ns: string, name: string, options: CommitOptions): Promise<void> {
    const s = this.store.getInfo(ns, options.key);
    if (s.info.kind !== "active") {
      throw failedPrecondition(`Snapshot "${options.key}" is not active (it is ${s.info.kind})`);
    }
    const usage = await this.#measure(s.id, this.#parentId(ns, s.info.parent));
    const target = this.#subvolume({ id: s.id, kind: "committed" });
    this.#sys.subvolSnapshot(this.contentDir(s.id), target, { readonly: true });
    try {
      this.store.tx(() => this.store.commitActive(ns, options.key, name, { usage, labels: options.labels }));
    } catch (err) {
      this.#sys.subvolDelete(target);
      throw err;
    }
    // A failure here leaves only the old writable subvolume in the folder, deleted with it.
    try {
      this.#sys.subvolDelete(this.contentDir(s.id));
    } catch { /* see above */ }
  }

  protected override async removeFolder(dir: string): Promise<void> {
    await removeSubvolumes(dir, this.#sys);
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Destroys every subvolume in `dir` (and those nested in them: a container may have made its own),
 * leaving plain folders for rm -r. A read-only subvolume cannot be emptied any other way.
 */
export async function removeSubvolumes(dir: string, sys: BtrfsSyscalls = btrfsSyscalls()): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) return;
    throw err;
  }
  for (const e of entries) {
    if (!e.isDirectory) continue;
    const path = `${dir}/${e.name}`;
    const st = await Deno.lstat(path);
    if (st.ino !== BTRFS_FIRST_FREE_OBJECTID) {
      await removeSubvolumes(path, sys);
      continue;
    }
    try {
      sys.subvolDelete(path);
    } catch (err) {
      if (!(err instanceof SyscallError && err.errno === ENOTEMPTY)) throw err;
      await removeSubvolumes(path, sys);
      sys.subvolDelete(path);
    }
  }
}

/**
 * The mount `root` lives on when it is btrfs (its device is the source of the snapshotter's mounts),
 * else undefined: containerd then skips the plugin.
 */
export async function btrfsMountOf(root: string): Promise<{ device: string; fsType: string }> {
  const real = await Deno.realPath(root);
  const m = lookupMount(real, await selfMountInfo());
  return { device: m.source, fsType: m.fsType };
}
