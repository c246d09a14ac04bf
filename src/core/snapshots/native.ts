/**
 * The native snapshotter: every snapshot is a full copy of its parent's tree in
 * `<root>/snapshots/<id>`, mounted with a bind. Slow and space-hungry, but works on any file system.
 */
import type { MetadataDB } from "../metadata/db.ts";
import { internal } from "../../base/errors.ts";
import { outputClean } from "../../base/spawn.ts";
import type { Mount } from "../mount/mod.ts";
import { LocalSnapshotter } from "./local.ts";
import type { StoredSnapshot } from "./storage.ts";

export class NativeSnapshotter extends LocalSnapshotter {
  constructor(root: string, db: MetadataDB) {
    super(root, db, "native");
  }

  protected override async populate(dir: string, snapshot: StoredSnapshot): Promise<void> {
    await Deno.chmod(dir, 0o755);
    const parent = snapshot.parentIds[0];
    if (parent === undefined) return;
    // cp -a keeps ownership, modes, times, xattrs, hard links, devices and sparse files; --reflink
    // makes the copy nearly free on file systems that share extents (btrfs, xfs).
    const out = await outputClean("cp", {
      args: ["-a", "--reflink=auto", "-T", this.snapshotDir(parent), dir],
      stdout: "null",
    });
    if (!out.success) {
      const msg = new TextDecoder().decode(out.stderr).trim();
      throw internal(`Cannot copy parent snapshot ${parent} into a new snapshot: ${msg}`);
    }
  }

  protected override contentDir(id: string): string {
    return this.snapshotDir(id);
  }

  protected override mountsOf(s: StoredSnapshot): Mount[] {
    return [{
      type: "bind",
      source: this.snapshotDir(s.id),
      options: [s.kind === "view" ? "ro" : "rw", "rbind"],
    }];
  }
}
