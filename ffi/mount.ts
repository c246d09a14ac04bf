/**
 * mount(2) and umount2(2) behind a typed seam: code above ffi/ takes a MountSyscalls, tests that cannot
 * mount pass a RecordingMountSyscalls (youki's Syscall trait is the model).
 */
import { check, cstr, libc, SyscallError } from "./libc.ts";

export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_SYNCHRONOUS = 0x10;
export const MS_REMOUNT = 0x20;
export const MS_MANDLOCK = 0x40;
export const MS_DIRSYNC = 0x80;
export const MS_NOATIME = 0x400;
export const MS_NODIRATIME = 0x800;
export const MS_BIND = 0x1000;
export const MS_MOVE = 0x2000;
export const MS_REC = 0x4000;
export const MS_SILENT = 0x8000;
export const MS_UNBINDABLE = 0x20000;
export const MS_PRIVATE = 0x40000;
export const MS_SLAVE = 0x80000;
export const MS_SHARED = 0x100000;
export const MS_RELATIME = 0x200000;
export const MS_STRICTATIME = 0x1000000;

export const MNT_FORCE = 0x1;
export const MNT_DETACH = 0x2;
export const MNT_EXPIRE = 0x4;
export const UMOUNT_NOFOLLOW = 0x8;

export const EINVAL = 22;
export const ENOENT = 2;

export interface MountSyscalls {
  /** mount(2); `fstype` and `data` may be empty. Throws SyscallError naming the call, target and errno. */
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  /** umount2(2). Throws SyscallError (errno EINVAL when `target` is not a mount point). */
  unmount(target: string, flags: number): void;
}

class LibcMountSyscalls implements MountSyscalls {
  mount(source: string, target: string, fstype: string, flags: number, data: string): void {
    const rc = libc().mount(
      cstr(source),
      cstr(target),
      fstype === "" ? null : cstr(fstype),
      BigInt(flags),
      data === "" ? null : cstr(data),
    );
    check(rc, "mount", () => `Cannot mount ${fstype || source} on ${target}`);
  }

  unmount(target: string, flags: number): void {
    const rc = libc().umount2(cstr(target), flags);
    check(rc, "umount2", () => `Cannot unmount ${target}`);
  }
}

let real: MountSyscalls | undefined;

/** The process-wide implementation backed by libc. */
export function mountSyscalls(): MountSyscalls {
  real ??= new LibcMountSyscalls();
  return real;
}

export type MountCall =
  | { op: "mount"; source: string; target: string; fstype: string; flags: number; data: string }
  | { op: "unmount"; target: string; flags: number };

/** Records every call; `failNext` makes the next matching call (optionally on one target) throw. */
export class RecordingMountSyscalls implements MountSyscalls {
  readonly calls: MountCall[] = [];
  #failures: { op: MountCall["op"]; errno: number; target?: string }[] = [];

  failNext(op: MountCall["op"], errno: number, target?: string): void {
    this.#failures.push({ op, errno, target });
  }

  mount(source: string, target: string, fstype: string, flags: number, data: string): void {
    this.calls.push({ op: "mount", source, target, fstype, flags, data });
    this.#maybeFail("mount", target, () => `Cannot mount ${fstype || source} on ${target}`);
  }

  unmount(target: string, flags: number): void {
    this.calls.push({ op: "unmount", target, flags });
    this.#maybeFail("unmount", target, () => `Cannot unmount ${target}`);
  }

  #maybeFail(op: MountCall["op"], target: string, what: () => string): void {
    const i = this.#failures.findIndex((f) => f.op === op && (f.target === undefined || f.target === target));
    if (i < 0) return;
    const [f] = this.#failures.splice(i, 1);
    throw new SyscallError(op === "mount" ? "mount" : "umount2", what(), f!.errno);
  }
}
