/**
 * btrfs subvolume calls through the kernel's ioctls, as containerd/btrfs makes them (that package wraps
 * the same four ioctls with cgo): create, snapshot (read-only or not), destroy, and the id of the
 * subvolume a folder is. No `btrfs` process per call, and errors carry errno.
 */
import { lazySymbols } from "./lazy_symbols.ts";
import { check, cstr } from "./libc.ts";

// From <linux/btrfs.h>; every argument struct is 4096 bytes.
const BTRFS_IOC_SUBVOL_CREATE = 0x5000940en;
const BTRFS_IOC_SNAP_DESTROY = 0x5000940fn;
const BTRFS_IOC_SNAP_CREATE_V2 = 0x50009417n;
const BTRFS_IOC_INO_LOOKUP = 0xd0009412n;
const ARGS_SIZE = 4096;
/** btrfs_ioctl_vol_args: __s64 fd; char name[4088]. */
const VOL_NAME_OFFSET = 8;
const VOL_NAME_MAX = 4087;
/** btrfs_ioctl_vol_args_v2: __s64 fd; __u64 transid; __u64 flags; __u64 unused[4]; char name[4040]. */
const V2_FLAGS_OFFSET = 16;
const V2_NAME_OFFSET = 56;
const V2_NAME_MAX = 4039;
const BTRFS_SUBVOL_RDONLY = 1n << 1n;
/** The inode number of every subvolume's root directory. */
export const BTRFS_FIRST_FREE_OBJECTID = 256;

const O_RDONLY_DIRECTORY_CLOEXEC = 0o2000000 | 0o200000;

const SYMBOLS = {
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let lib: Symbols | undefined;
function sym(): Symbols {
  return lib ??= lazySymbols(SYMBOLS);
}

export interface BtrfsSyscalls {
  /** A new, empty subvolume at `path` (its parent folder must be on btrfs). */
  subvolCreate(path: string): void;
  /** A snapshot of the subvolume `source` at `target`, read-only when asked. */
  subvolSnapshot(source: string, target: string, options?: { readonly?: boolean }): void;
  /** Deletes the subvolume at `path` with everything in it (it must hold no nested subvolume). */
  subvolDelete(path: string): void;
  /** The id of the subvolume `path` is the root of, for `mount -o subvolid=`. */
  subvolId(path: string): bigint;
}

function split(path: string): [dir: string, name: string] {
  const i = path.lastIndexOf("/");
  if (i < 0) return [".", path];
  return [i === 0 ? "/" : path.slice(0, i), path.slice(i + 1)];
}

function withDir<T>(dir: string, what: () => string, fn: (fd: number) => T): T {
  const fd = sym().open(cstr(dir), O_RDONLY_DIRECTORY_CLOEXEC, 0);
  check(fd, "open", what);
  try {
    return fn(fd);
  } finally {
    sym().close(fd);
  }
}

function putName(args: Uint8Array, offset: number, max: number, name: string, what: () => string): void {
  const bytes = cstr(name);
  if (bytes.length - 1 > max || name === "" || name.includes("/")) {
    throw new Error(`${what()}: invalid subvolume name "${name}"`);
  }
  args.set(bytes, offset);
}

class IoctlBtrfsSyscalls implements BtrfsSyscalls {
  subvolCreate(path: string): void {
    const what = () => `Cannot create btrfs subvolume ${path}`;
    const [dir, name] = split(path);
    const args = new Uint8Array(ARGS_SIZE);
    putName(args, VOL_NAME_OFFSET, VOL_NAME_MAX, name, what);
    withDir(dir, what, (fd) => check(sym().ioctl(fd, BTRFS_IOC_SUBVOL_CREATE, args), "ioctl", what));
  }

  subvolSnapshot(source: string, target: string, options: { readonly?: boolean } = {}): void {
    const what = () => `Cannot snapshot btrfs subvolume ${source} to ${target}`;
    const [dir, name] = split(target);
    const args = new Uint8Array(ARGS_SIZE);
    putName(args, V2_NAME_OFFSET, V2_NAME_MAX, name, what);
    const view = new DataView(args.buffer);
    if (options.readonly) view.setBigUint64(V2_FLAGS_OFFSET, BTRFS_SUBVOL_RDONLY, true);
    withDir(source, what, (src) => {
      view.setBigInt64(0, BigInt(src), true);
      withDir(dir, what, (fd) => check(sym().ioctl(fd, BTRFS_IOC_SNAP_CREATE_V2, args), "ioctl", what));
    });
  }

  subvolDelete(path: string): void {
    const what = () => `Cannot delete btrfs subvolume ${path}`;
    const [dir, name] = split(path);
    const args = new Uint8Array(ARGS_SIZE);
    putName(args, VOL_NAME_OFFSET, VOL_NAME_MAX, name, what);
    withDir(dir, what, (fd) => check(sym().ioctl(fd, BTRFS_IOC_SNAP_DESTROY, args), "ioctl", what));
  }

  subvolId(path: string): bigint {
    const what = () => `Cannot read the btrfs subvolume id of ${path}`;
    // btrfs_ioctl_ino_lookup_args: treeid 0 (the fd's own tree) and the root's objectid return the
    // tree id, which is the subvolume id.
    const args = new Uint8Array(ARGS_SIZE);
    const view = new DataView(args.buffer);
    view.setBigUint64(8, BigInt(BTRFS_FIRST_FREE_OBJECTID), true);
    withDir(path, what, (fd) => check(sym().ioctl(fd, BTRFS_IOC_INO_LOOKUP, args), "ioctl", what));
    return view.getBigUint64(0, true);
  }
}

let real: BtrfsSyscalls | undefined;

export function btrfsSyscalls(): BtrfsSyscalls {
  real ??= new IoctlBtrfsSyscalls();
  return real;
}
