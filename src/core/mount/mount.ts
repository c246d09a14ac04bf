/**
 * containerd's Mount: how to make a snapshot visible at a path. Snapshotters return lists of these;
 * the differ, the shim and tests mount them with mountAll() and undo them with unmountAll().
 */
import {
  EINVAL,
  MNT_DETACH,
  MountSyscalls,
  mountSyscalls,
  MS_BIND,
  MS_DIRSYNC,
  MS_MANDLOCK,
  MS_NOATIME,
  MS_NODEV,
  MS_NODIRATIME,
  MS_NOEXEC,
  MS_NOSUID,
  MS_PRIVATE,
  MS_RDONLY,
  MS_REC,
  MS_RELATIME,
  MS_REMOUNT,
  MS_SHARED,
  MS_SLAVE,
  MS_STRICTATIME,
  MS_SYNCHRONOUS,
  MS_UNBINDABLE,
} from "../../../ffi/mount.ts";
import { SyscallError } from "../../../ffi/libc.ts";

export interface Mount {
  /** File-system type: "bind", "overlay", "tmpfs", … */
  readonly type: string;
  readonly source: string;
  /** Sub-path under the mount root; empty or absent for the root itself. */
  readonly target?: string;
  readonly options: readonly string[];
}

export interface MountOptions {
  readonly syscalls?: MountSyscalls;
}

/** Option → [flags to clear, flags to set], as in mount(8). */
const FLAG_OPTIONS: Record<string, [clear: boolean, flag: number]> = {
  async: [true, MS_SYNCHRONOUS],
  atime: [true, MS_NOATIME],
  bind: [false, MS_BIND],
  defaults: [false, 0],
  dev: [true, MS_NODEV],
  diratime: [true, MS_NODIRATIME],
  dirsync: [false, MS_DIRSYNC],
  exec: [true, MS_NOEXEC],
  mand: [false, MS_MANDLOCK],
  noatime: [false, MS_NOATIME],
  nodev: [false, MS_NODEV],
  nodiratime: [false, MS_NODIRATIME],
  noexec: [false, MS_NOEXEC],
  nomand: [true, MS_MANDLOCK],
  norelatime: [true, MS_RELATIME],
  nostrictatime: [true, MS_STRICTATIME],
  nosuid: [false, MS_NOSUID],
  rbind: [false, MS_BIND | MS_REC],
  relatime: [false, MS_RELATIME],
  remount: [false, MS_REMOUNT],
  ro: [false, MS_RDONLY],
  rw: [true, MS_RDONLY],
  strictatime: [false, MS_STRICTATIME],
  suid: [true, MS_NOSUID],
  sync: [false, MS_SYNCHRONOUS],
};

const PROPAGATION: Record<string, number> = {
  private: MS_PRIVATE,
  rprivate: MS_PRIVATE | MS_REC,
  shared: MS_SHARED,
  rshared: MS_SHARED | MS_REC,
  slave: MS_SLAVE,
  rslave: MS_SLAVE | MS_REC,
  unbindable: MS_UNBINDABLE,
  runbindable: MS_UNBINDABLE | MS_REC,
};

export interface ParsedOptions {
  flags: number;
  propagation: number;
  /** Options the kernel parses itself (lowerdir=…, size=…), comma-joined. */
  data: string;
}

export function parseMountOptions(options: readonly string[]): ParsedOptions {
  let flags = 0;
  let propagation = 0;
  const data: string[] = [];
  for (const o of options) {
    const f = FLAG_OPTIONS[o];
    if (f) {
      flags = f[0] ? flags & ~f[1] : flags | f[1];
    } else if (o in PROPAGATION) {
      propagation |= PROPAGATION[o]!;
    } else {
      data.push(o);
    }
  }
  return { flags, propagation, data: data.join(",") };
}

function targetOf(m: Mount, root: string): string {
  if (!m.target || m.target === "/") return root;
  const rel = m.target.split("/").filter((p) => p !== "" && p !== ".");
  if (rel.includes("..")) {
    throw new SyscallError("mount", `Cannot mount on ${m.target}: escapes ${root}`, EINVAL);
  }
  return [root, ...rel].join("/");
}

/** Mounts one entry at `root` (joined with its target); a read-only bind needs a second, remount call. */
export function mountOne(m: Mount, root: string, options: MountOptions = {}): void {
  const sys = options.syscalls ?? mountSyscalls();
  const target = targetOf(m, root);
  const { flags, propagation, data } = parseMountOptions(m.options);
  const isBind = (flags & MS_BIND) !== 0 || m.type === "bind";
  const mountFlags = isBind ? flags | MS_BIND : flags;
  sys.mount(m.source, target, isBind ? "" : m.type, isBind ? mountFlags & ~MS_RDONLY : mountFlags, data);
  try {
    if (isBind && (flags & MS_RDONLY) !== 0) {
      // The kernel ignores MS_RDONLY on the bind call itself: read-only takes a remount.
      sys.mount("", target, "", mountFlags | MS_REMOUNT | MS_RDONLY, "");
    }
    if (propagation !== 0) sys.mount("", target, "", propagation, "");
  } catch (err) {
    sys.unmount(target, MNT_DETACH);
    throw err;
  }
}

/** Mounts every entry in order; on failure, undoes the ones already made. */
export function mountAll(mounts: readonly Mount[], root: string, options: MountOptions = {}): void {
  const sys = options.syscalls ?? mountSyscalls();
  const done: string[] = [];
  try {
    for (const m of mounts) {
      mountOne(m, root, { syscalls: sys });
      done.push(targetOf(m, root));
    }
  } catch (err) {
    for (const t of done.reverse()) {
      try {
        sys.unmount(t, MNT_DETACH);
      } catch { /* best effort: the original error matters more */ }
    }
    throw err;
  }
}

/** Unmounts everything stacked on `target` until it is no longer a mount point. */
export function unmountAll(target: string, options: MountOptions & { flags?: number } = {}): void {
  const sys = options.syscalls ?? mountSyscalls();
  for (let i = 0; i < 128; i++) {
    try {
      sys.unmount(target, options.flags ?? 0);
    } catch (err) {
      if (err instanceof SyscallError && (err.errno === EINVAL || err.errno === 2)) return;
      throw err;
    }
  }
  throw new Error(`Cannot unmount ${target}: still mounted after 128 unmounts`);
}

/**
 * Mounts meant for writing, made read-only: an overlay's upper dir becomes its topmost lower dir, so
 * the snapshot can be read while something else has it mounted writable.
 */
export function readonlyMounts(mounts: readonly Mount[]): Mount[] {
  return mounts.map((m) => {
    if (m.type === "overlay") {
      const upper = m.options.find((o) => o.startsWith("upperdir="))?.slice("upperdir=".length);
      if (upper === undefined) return m;
      const options = m.options.filter((o) => !o.startsWith("upperdir=") && !o.startsWith("workdir="))
        .map((o) => o.startsWith("lowerdir=") ? `lowerdir=${upper}:${o.slice("lowerdir=".length)}` : o);
      return { ...m, options };
    }
    return { ...m, options: [...m.options.filter((o) => o !== "rw"), "ro"] };
  });
}

export interface TempMountOptions extends MountOptions {
  /** Parent folder for the temporary mount point (default: the system temp dir). */
  readonly tempDir?: string;
}

const TEMP_MOUNT_PREFIX = "berth-mount-";

/**
 * Unmounts and removes the temporary mount points withTempMount left in `dir` when the process died
 * inside `fn` (a daemon killed while applying a layer): only for a folder no one else mounts in.
 * Returns how many were removed.
 */
export function removeStaleTempMounts(dir: string, options: MountOptions = {}): number {
  let n = 0;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0;
    throw err;
  }
  for (const e of entries) {
    if (!e.isDirectory || !e.name.startsWith(TEMP_MOUNT_PREFIX)) continue;
    const path = `${dir}/${e.name}`;
    unmountAll(path, { ...options, flags: MNT_DETACH });
    // Never recursive, as in withTempMount: a folder still mounted must not lose the snapshot's data.
    Deno.removeSync(path);
    n++;
  }
  return n;
}

/** Mounts `mounts` on a fresh temporary folder, runs `fn` on it, and always unmounts and removes it. */
export async function withTempMount<T>(
  mounts: readonly Mount[],
  fn: (root: string) => T | Promise<T>,
  options: TempMountOptions = {},
): Promise<T> {
  const dir = await Deno.makeTempDir({ dir: options.tempDir, prefix: TEMP_MOUNT_PREFIX });
  try {
    mountAll(mounts, dir, options);
    try {
      return await fn(dir);
    } finally {
      unmountAll(dir, options);
    }
  } finally {
    // Never recursive: if an unmount failed above, a recursive remove would delete the mounted data.
    await Deno.remove(dir).catch(() => {});
  }
}
