/**
 * The overlayfs snapshotter (containerd's default): each snapshot owns `<root>/snapshots/<id>/fs`
 * (its upper layer) and, when active, `work`; a snapshot with parents mounts them as lowerdirs.
 */
import type { MetadataDB } from "../metadata/db.ts";
import type { Mount } from "../mount/mod.ts";
import { mountAll, unmountAll } from "../mount/mod.ts";
import type { MountSyscalls } from "../../../ffi/mount.ts";
import { LocalSnapshotter } from "./local.ts";
import type { StoredSnapshot } from "./storage.ts";
import type { Info } from "./snapshotter.ts";

export interface OverlayOptions {
  /** Extra overlay mount options appended to every overlay mount (e.g. "index=off"). */
  readonly mountOptions?: readonly string[];
  /** containerd's `upperdir_label`: every snapshot's info names its upper folder (UPPERDIR_LABEL). */
  readonly upperdirLabel?: boolean;
}

/** The label `upperdir_label` adds: the snapshot's upper folder, for tools that read it in place. */
export const UPPERDIR_LABEL = "containerd.io/snapshot/overlay.upperdir";

export class OverlaySnapshotter extends LocalSnapshotter {
  readonly #mountOptions: readonly string[];
  readonly #upperdirLabel: boolean;

  constructor(root: string, db: MetadataDB, options: OverlayOptions = {}) {
    super(root, db, "overlayfs");
    this.#mountOptions = options.mountOptions ?? [];
    this.#upperdirLabel = options.upperdirLabel ?? false;
  }

  protected override decorate(id: string, info: Info): Info {
    if (!this.#upperdirLabel) return info;
    return { ...info, labels: { ...info.labels, [UPPERDIR_LABEL]: this.#fs(id) } };
  }

  #fs(id: string): string {
    return `${this.snapshotDir(id)}/fs`;
  }

  protected override populate(dir: string, snapshot: StoredSnapshot): void {
    Deno.mkdirSync(`${dir}/fs`, { mode: 0o755 });
    Deno.chmodSync(`${dir}/fs`, 0o755);
    // The merged root takes the upper dir's owner: copy the parent's, as containerd does, so a snapshot
    // of a tree remapped for a user namespace stays writable by the remapped root.
    const parent = snapshot.parentIds[0];
    if (parent !== undefined) {
      const st = Deno.statSync(this.#fs(parent));
      if (st.uid !== 0 || st.gid !== 0) Deno.chownSync(`${dir}/fs`, st.uid, st.gid);
    }
    if (snapshot.kind === "active") Deno.mkdirSync(`${dir}/work`, { mode: 0o711 });
  }

  protected override contentDir(id: string): string {
    return this.#fs(id);
  }

  protected override mountsOf(s: StoredSnapshot): Mount[] {
    if (s.parentIds.length === 0) {
      // Overlay needs at least one lower layer: a base snapshot is its own folder, bound.
      return [{ type: "bind", source: this.#fs(s.id), options: [s.kind === "view" ? "ro" : "rw", "rbind"] }];
    }
    const options: string[] = [];
    if (s.kind === "active") {
      options.push(`workdir=${this.snapshotDir(s.id)}/work`, `upperdir=${this.#fs(s.id)}`);
    } else if (s.parentIds.length === 1) {
      return [{ type: "bind", source: this.#fs(s.parentIds[0]!), options: ["ro", "rbind"] }];
    }
    options.push(`lowerdir=${s.parentIds.map((id) => this.#fs(id)).join(":")}`, ...this.#mountOptions);
    return [{ type: "overlay", source: "overlay", options }];
  }
}

/**
 * Whether overlay (with an upper and a work dir) can be mounted on the file system holding `root`:
 * the plugin skips itself when it cannot (e.g. on overlay, or without the kernel module).
 *
 * A test mount costs ~7 ms of every daemon start, so a success is remembered in `root` for the kernel
 * and the file system it was made on: a new kernel, or `root` on another file system, tests again.
 * A failure is never remembered (a module loaded later must be found).
 */
export async function overlaySupported(
  root: string,
  options: { syscalls?: MountSyscalls } = {},
): Promise<boolean> {
  Deno.mkdirSync(root, { recursive: true });
  const stamp = `${root}/${SUPPORTED_STAMP}`;
  const seen = `${Deno.osRelease()} ${Deno.statSync(root).dev}\n`;
  if (readStamp(stamp) === seen) return true;
  if (!(await overlayMountWorks(root, options))) return false;
  // Written whole or not at all: a torn stamp only means testing again.
  Deno.writeTextFileSync(`${stamp}.tmp`, seen);
  Deno.renameSync(`${stamp}.tmp`, stamp);
  return true;
}

/** The file recording a successful test mount under the snapshotter's root. */
const SUPPORTED_STAMP = "overlay-supported";

function readStamp(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

async function overlayMountWorks(root: string, options: { syscalls?: MountSyscalls }): Promise<boolean> {
  const dir = await Deno.makeTempDir({ dir: root, prefix: "overlay-check-" });
  try {
    for (const d of ["lower", "upper", "work", "merged"]) Deno.mkdirSync(`${dir}/${d}`);
    try {
      mountAll(
        [{
          type: "overlay",
          source: "overlay",
          options: [`lowerdir=${dir}/lower`, `upperdir=${dir}/upper`, `workdir=${dir}/work`],
        }],
        `${dir}/merged`,
        options,
      );
    } catch {
      return false;
    }
    unmountAll(`${dir}/merged`, options);
    return true;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
