/**
 * File-system calls Deno has no (symlink-safe) API for: mknod, lchown, l*xattr and utimensat without
 * following symlinks. Used by the layer applier.
 */
import { check, cstr, errno, libc, SyscallError } from "./libc.ts";

export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const ENODATA = 61;

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;

export interface FsSyscalls {
  /** mknod(2); `mode` includes the file type bits (S_IFCHR, S_IFBLK, S_IFIFO). */
  mknod(path: string, mode: number, major: number, minor: number): void;
  lchown(path: string, uid: number, gid: number): void;
  lsetxattr(path: string, name: string, value: Uint8Array): void;
  /** The attribute's value, or undefined when the file does not have it. */
  lgetxattr(path: string, name: string): Uint8Array | undefined;
  llistxattr(path: string): string[];
  /** Sets atime and mtime (ms since the epoch) on the path itself, never a symlink's target. */
  lutimes(path: string, atimeMs: number, mtimeMs: number): void;
}

/** glibc's gnu_dev_makedev. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

class LibcFsSyscalls implements FsSyscalls {
  mknod(path: string, mode: number, major: number, minor: number): void {
    check(libc().mknod(cstr(path), mode, makedev(major, minor)), "mknod", () => `Cannot mknod ${path}`);
  }

  lchown(path: string, uid: number, gid: number): void {
    check(libc().lchown(cstr(path), uid, gid), "lchown", () => `Cannot chown ${path} to ${uid}:${gid}`);
  }

  lsetxattr(path: string, name: string, value: Uint8Array): void {
    const buf = new Uint8Array(value);
    const rc = libc().lsetxattr(cstr(path), cstr(name), buf, BigInt(buf.length), 0);
    check(rc, "lsetxattr", () => `Cannot set xattr ${name} on ${path}`);
  }

  lgetxattr(path: string, name: string): Uint8Array | undefined {
    const p = cstr(path);
    const n = cstr(name);
    const size = Number(libc().lgetxattr(p, n, null, 0n));
    if (size < 0) {
      const code = errno();
      if (code === ENODATA) return undefined;
      throw new SyscallError("lgetxattr", `Cannot read xattr ${name} of ${path}`, code);
    }
    const buf = new Uint8Array(size);
    const got = Number(libc().lgetxattr(p, n, buf, BigInt(size)));
    check(got, "lgetxattr", () => `Cannot read xattr ${name} of ${path}`);
    return buf.subarray(0, got);
  }

  llistxattr(path: string): string[] {
    const p = cstr(path);
    const size = Number(libc().llistxattr(p, null, 0n));
    check(size, "llistxattr", () => `Cannot list xattrs of ${path}`);
    if (size === 0) return [];
    const buf = new Uint8Array(size);
    const got = Number(libc().llistxattr(p, buf, BigInt(size)));
    check(got, "llistxattr", () => `Cannot list xattrs of ${path}`);
    return new TextDecoder().decode(buf.subarray(0, got)).split("\0").filter((s) => s !== "");
  }

  lutimes(path: string, atimeMs: number, mtimeMs: number): void {
    const times = new BigInt64Array(4);
    const set = (i: number, ms: number) => {
      const ns = BigInt(Math.round(ms * 1e6));
      times[i] = ns / 1_000_000_000n;
      times[i + 1] = ns % 1_000_000_000n;
    };
    set(0, atimeMs);
    set(2, mtimeMs);
    const rc = libc().utimensat(AT_FDCWD, cstr(path), new Uint8Array(times.buffer), AT_SYMLINK_NOFOLLOW);
    check(rc, "utimensat", () => `Cannot set times of ${path}`);
  }
}

let real: FsSyscalls | undefined;

export function fsSyscalls(): FsSyscalls {
  real ??= new LibcFsSyscalls();
  return real;
}
