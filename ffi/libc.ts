/**
 * The one handle on libc shared by every binding in ffi/. Opened lazily so that importing a binding
 * costs nothing on hosts (or tests) that never make the call.
 */

import { lazySymbols } from "./lazy_symbols.ts";

const SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "buffer"], result: "i32" },
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  mknod: { parameters: ["buffer", "u32", "u64"], result: "i32" },
  lchown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  lsetxattr: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
  lgetxattr: { parameters: ["buffer", "buffer", "buffer", "usize"], result: "isize" },
  llistxattr: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const lib: Libc = lazySymbols(SYMBOLS);

export function libc(): Libc {
  return lib;
}

/** errno of the last failed call on this thread (FFI calls here are synchronous, so nothing runs between). */
export function errno(): number {
  const ptr = libc().__errno_location();
  if (ptr === null) return 0;
  return new Deno.UnsafePointerView(ptr).getInt32();
}

const encoder = new TextEncoder();

/** A NUL-terminated copy of `s` for a `const char *` parameter. */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  const bytes = encoder.encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  7: "E2BIG",
  9: "EBADF",
  10: "ECHILD",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  19: "ENODEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  24: "EMFILE",
  28: "ENOSPC",
  30: "EROFS",
  31: "EMLINK",
  36: "ENAMETOOLONG",
  38: "ENOSYS",
  39: "ENOTEMPTY",
  40: "ELOOP",
  61: "ENODATA",
  95: "EOPNOTSUPP",
};

export function errnoName(code: number): string {
  return ERRNO_NAMES[code] ?? "E?";
}

/**
 * What a failed call means to a caller above, in the words of src/base/errors.ts (whose errorKind() reads
 * it); absent, the failure is internal.
 */
export type SyscallKind =
  | "not_found"
  | "permission_denied"
  | "aborted"
  | "invalid_argument"
  | "not_implemented";

/** A failed libc call, carrying errno so callers can branch on it (e.g. EINVAL from umount of a non-mount). */
export class SyscallError extends Error {
  readonly errno: number;
  readonly call: string;
  readonly kind?: SyscallKind;

  constructor(call: string, message: string, code: number, kind?: SyscallKind) {
    super(`${message}: ${errnoName(code)} (${code})`);
    this.name = "SyscallError";
    this.errno = code;
    this.call = call;
    this.kind = kind;
  }
}

/** Throws a SyscallError when `rc` is negative; `what` reads like "Cannot mount overlay on /x". */
export function check(rc: number | bigint, call: string, what: () => string): void {
  if (Number(rc) < 0) throw new SyscallError(call, what(), errno());
}
