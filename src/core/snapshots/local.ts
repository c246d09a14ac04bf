/**
 * What overlayfs and native share: metadata in SnapshotStore, one folder per snapshot id under
 * `<root>/snapshots`, removal by renaming the folder out of the way inside the metadata transaction.
 * Subclasses say how a folder is filled and how a snapshot is mounted.
 */
import type { MetadataDB } from "../metadata/db.ts";
import { parseFilters } from "../filters/mod.ts";
import type { Mount } from "../mount/mod.ts";
import { diskUsage } from "./disk_usage.ts";
import type {
  CollectableSnapshotter,
  CommitOptions,
  Info,
  PrepareOptions,
  Usage,
  WalkOptions,
} from "./snapshotter.ts";
import { SnapshotStore, type StoredSnapshot } from "./storage.ts";

export abstract class LocalSnapshotter implements CollectableSnapshotter {
  protected readonly root: string;
  protected readonly store: SnapshotStore;
  /** Temp folders of prepares in progress, which cleanup() must leave alone. */
  readonly #inflight = new Set<string>();
  /** Namespace and key of each prepare or view in progress (`ns\0key`), which GC must keep. */
  readonly #creating = new Set<string>();
  /** The background deletion removeCrashLeftovers() started. */
  #sweeping: Promise<void> = Promise.resolve();

  constructor(root: string, db: MetadataDB, name: string) {
    this.root = root;
    Deno.mkdirSync(`${root}/snapshots`, { recursive: true, mode: 0o700 });
    this.store = new SnapshotStore(db, name);
  }

  protected snapshotDir(id: string): string {
    return `${this.root}/snapshots/${id}`;
  }

  /** Fills a freshly made temp folder for a new snapshot (e.g. fs/ and work/, or a copy of the parent). */
  protected abstract populate(dir: string, snapshot: StoredSnapshot): Promise<void> | void;
  /** The folder whose usage counts for an active snapshot. */
  protected abstract contentDir(id: string): string;
  protected abstract mountsOf(snapshot: StoredSnapshot): Mount[];

  /** Deletes a snapshot folder that is no longer referred to (btrfs must destroy its subvolumes first). */
  protected removeFolder(dir: string): Promise<void> {
    return Deno.remove(dir, { recursive: true });
  }

  /**
   * What a snapshot's info shows beyond its stored labels (overlayfs's `upperdir_label`); added on stat,
   * update and walk, after walk's filters ran on the stored info, as containerd does.
   */
  protected decorate(_id: string, info: Info): Info {
    return info;
  }

  // Methods are async even where the work is synchronous, so that errors reject rather than throw.
  // deno-lint-ignore require-await
  async stat(ns: string, key: string): Promise<Info> {
    const { id, info } = this.store.getInfo(ns, key);
    return this.decorate(id, info);
  }

  // deno-lint-ignore require-await
  async update(ns: string, info: Info, options: { fieldpaths?: readonly string[] } = {}): Promise<Info> {
    const updated = this.store.tx(() => this.store.updateInfo(ns, info, options.fieldpaths ?? []));
    return this.decorate(this.store.getInfo(ns, updated.name).id, updated);
  }

  async usage(ns: string, key: string): Promise<Usage> {
    const { id, info, usage } = this.store.getInfo(ns, key);
    if (info.kind !== "active") return usage;
    return await diskUsage(this.contentDir(id));
  }

  // deno-lint-ignore require-await
  async mounts(ns: string, key: string): Promise<Mount[]> {
    return this.mountsOf(this.store.getSnapshot(ns, key));
  }

  prepare(ns: string, key: string, options: PrepareOptions = {}): Promise<Mount[]> {
    return this.#create(ns, "active", key, options);
  }

  view(ns: string, key: string, options: PrepareOptions = {}): Promise<Mount[]> {
    return this.#create(ns, "view", key, options);
  }

  async #create(ns: string, kind: "active" | "view", key: string, options: PrepareOptions): Promise<Mount[]> {
    // The folder is built under a temp name first and renamed to its id inside the metadata
    // transaction: a crash leaves at most a temp folder, which cleanup() removes.
    const tmp = await Deno.makeTempDir({ dir: `${this.root}/snapshots`, prefix: "new-" });
    this.#inflight.add(tmp);
    const creating = `${ns}\0${key}`;
    const mine = !this.#creating.has(creating);
    if (mine) this.#creating.add(creating);
    try {
      const probe = this.store.tx(() => this.store.createSnapshot(ns, kind, key, options));
      // populate() may be slow (native copies the parent); the row exists meanwhile, so a concurrent
      // prepare of the same key fails with alreadyExists instead of racing.
      let snapshot: StoredSnapshot;
      try {
        await this.populate(tmp, probe);
        snapshot = this.store.tx(() => {
          Deno.renameSync(tmp, this.snapshotDir(probe.id));
          return probe;
        });
      } catch (err) {
        this.store.tx(() => this.store.remove(ns, key));
        throw err;
      }
      return this.mountsOf(snapshot);
    } finally {
      this.#inflight.delete(tmp);
      await this.removeFolder(tmp).catch(() => {});
      if (mine) this.#creating.delete(creating);
    }
  }

  creatingSync(ns: string): string[] {
    const prefix = `${ns}\0`;
    return [...this.#creating].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  }

  async commit(ns: string, name: string, options: CommitOptions): Promise<void> {
    const { id, info } = this.store.getInfo(ns, options.key);
    // Usage is measured outside the transaction (it walks the tree) and stored with the commit.
    const usage = info.kind === "active" ? await diskUsage(this.contentDir(id)) : { size: 0, inodes: 0 };
    this.store.tx(() => this.store.commitActive(ns, options.key, name, { usage, labels: options.labels }));
  }

  async remove(ns: string, key: string): Promise<void> {
    await this.removeSync(ns, key)();
  }

  removeSync(ns: string, key: string): () => Promise<void> {
    const removed = this.store.tx(() => {
      const { id } = this.store.remove(ns, key);
      const trash = `${this.root}/snapshots/rm-${id}`;
      try {
        Deno.renameSync(this.snapshotDir(id), trash);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
        return undefined;
      }
      return trash;
    });
    // A failure here only leaves garbage that cleanup() collects; the snapshot is gone either way.
    return async () => {
      if (removed) await this.removeFolder(removed).catch(() => {});
    };
  }

  async walk(ns: string, fn: (info: Info) => void | Promise<void>, options: WalkOptions = {}): Promise<void> {
    const filter = parseFilters(options.filters ?? []);
    for (const { id, info } of this.store.listWithIds(ns, filter)) {
      options.signal?.throwIfAborted();
      await fn(this.decorate(id, info));
    }
  }

  walkSync(ns: string): Info[] {
    return this.store.list(ns, parseFilters([]));
  }

  /**
   * What a crash left in `<root>/snapshots`, removed as the snapshotter starts (before any prepare, so
   * every folder without a record is garbage): `rm-…` folders of interrupted removals, `new-…` temp
   * folders of interrupted prepares, and folders whose record is gone. Orphans are renamed to `rm-…`
   * at once, so a new snapshot can never meet one; the deleting goes on in the background and close()
   * waits for it. Returns how many were found.
   */
  removeCrashLeftovers(): number {
    const dir = `${this.root}/snapshots`;
    const ids = this.store.ids();
    const trash: string[] = [];
    for (const e of Deno.readDirSync(dir)) {
      if (ids.has(e.name)) continue;
      let path = `${dir}/${e.name}`;
      if (!e.name.startsWith("rm-") && !e.name.startsWith("new-")) {
        const renamed = `${dir}/rm-orphan-${e.name}`;
        Deno.renameSync(path, renamed);
        path = renamed;
      }
      trash.push(path);
    }
    this.#sweeping = Promise.all(trash.map((p) => this.removeFolder(p).catch(() => {}))).then(() => {});
    return trash.length;
  }

  async cleanup(): Promise<void> {
    const ids = this.store.ids();
    for await (const e of Deno.readDir(`${this.root}/snapshots`)) {
      if (ids.has(e.name) || this.#inflight.has(`${this.root}/snapshots/${e.name}`)) continue;
      await this.removeFolder(`${this.root}/snapshots/${e.name}`).catch(() => {});
    }
  }

  close(): Promise<void> {
    return this.#sweeping;
  }
}
