/**
 * Copies a file tree the way `docker cp` and a volume's copy-up need it: files, folders and symlinks
 * (as links, never followed), hard links kept as links, modes, ownership, times and extended attributes.
 * Devices, sockets and FIFOs are skipped. The destination side is walked with lstat only: an entry
 * already there that is a symlink is replaced, never written through, so a copy into a container's
 * folder cannot be steered out of it by a link the container planted.
 */
import { type FsSyscalls, fsSyscalls } from "../../ffi/fs.ts";
import { invalidArgument } from "../base/errors.ts";

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

export interface TreeCopyOptions {
  /** The owner of every copied entry; default: each source entry's own. */
  readonly owner?: Owner;
  /** Called for each entry not copied (a device, socket or FIFO) with the reason. */
  readonly onSkip?: (path: string, why: string) => void;
  readonly sys?: FsSyscalls;
  /** Follow `src` itself when it is a link (a container's `/proc/<pid>/root`); never below it. */
  readonly followTop?: boolean;
}

/** What a copy did, for tests and messages. */
export interface TreeCopyResult {
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  skipped: number;
}

const S_IFMT = 0o170000;
const S_IFSOCK = 0o140000;
const S_IFIFO = 0o010000;

function lstatOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

class TreeCopier {
  readonly #options: TreeCopyOptions;
  readonly #sys: FsSyscalls;
  /** `dev:ino` of a multiply-linked source file → where its first copy went. */
  readonly #links = new Map<string, string>();
  readonly result: TreeCopyResult = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, skipped: 0 };

  constructor(options: TreeCopyOptions) {
    this.#options = options;
    this.#sys = options.sys ?? fsSyscalls();
  }

  async entry(src: string, dst: string, info = Deno.lstatSync(src)): Promise<void> {
    if (info.isDirectory) return await this.#dir(src, dst, info);
    if (info.isSymlink) return this.#symlink(src, dst, info);
    if (info.isFile) return await this.#file(src, dst, info);
    const type = (info.mode ?? 0) & S_IFMT;
    const why = type === S_IFSOCK ? "a socket" : type === S_IFIFO ? "a FIFO" : "a device";
    this.result.skipped++;
    this.#options.onSkip?.(src, why);
  }

  /** Copies the entries of `src` into the existing folder `dst` (not the folder's own attributes). */
  async children(src: string, dst: string): Promise<void> {
    const names = [...Deno.readDirSync(src)].map((e) => e.name).sort();
    for (const name of names) await this.entry(`${src}/${name}`, `${dst}/${name}`);
  }

  async #dir(src: string, dst: string, info: Deno.FileInfo): Promise<void> {
    const there = lstatOrUndefined(dst);
    if (there && !there.isDirectory) Deno.removeSync(dst);
    // 0o700 while filling it: nobody else gets in before the final mode is set.
    if (!there?.isDirectory) Deno.mkdirSync(dst, { mode: 0o700 });
    this.result.dirs++;
    await this.children(src, dst);
    this.#attributes(src, dst, info);
  }

  #symlink(src: string, dst: string, info: Deno.FileInfo): void {
    this.#clear(dst);
    Deno.symlinkSync(Deno.readLinkSync(src), dst);
    this.result.symlinks++;
    this.#attributes(src, dst, info);
  }

  async #file(src: string, dst: string, info: Deno.FileInfo): Promise<void> {
    this.#clear(dst);
    const key = `${info.dev}:${info.ino}`;
    const first = info.nlink && info.nlink > 1 ? this.#links.get(key) : undefined;
    if (first !== undefined) {
      Deno.linkSync(first, dst);
      this.result.hardlinks++;
      return;
    }
    const from = await Deno.open(src, { read: true });
    try {
      // The file read is the one lstat saw: a symlink swapped in meanwhile is not followed out.
      const opened = await from.stat();
      if (opened.ino !== info.ino || opened.dev !== info.dev || !opened.isFile) {
        throw invalidArgument(`Cannot copy ${src}: it changed while being copied`);
      }
      // createNew is O_EXCL: it never writes through a symlink put at `dst` after #clear.
      const to = await Deno.open(dst, { write: true, createNew: true, mode: 0o600 });
      await from.readable.pipeTo(to.writable, { preventClose: false });
    } finally {
      try {
        from.close();
      } catch { /* closed by pipeTo */ }
    }
    this.result.files++;
    if (info.nlink && info.nlink > 1) this.#links.set(key, dst);
    this.#attributes(src, dst, info);
  }

  /** Removes a non-folder at `dst`; a folder there cannot be replaced by a non-folder. */
  #clear(dst: string): void {
    const there = lstatOrUndefined(dst);
    if (!there) return;
    if (there.isDirectory) {
      throw invalidArgument(`Cannot overwrite directory ${dst} with non-directory`);
    }
    Deno.removeSync(dst);
  }

  /** Ownership first (chown clears setuid bits), then mode, xattrs, and the times last. */
  #attributes(src: string, dst: string, info: Deno.FileInfo): void {
    const owner = this.#options.owner ?? { uid: info.uid ?? 0, gid: info.gid ?? 0 };
    try {
      this.#sys.lchown(dst, owner.uid, owner.gid);
    } catch (err) {
      // Only root may give files away; a user copying their own files keeps them as theirs.
      if (Deno.uid() === 0) throw err;
    }
    if (!info.isSymlink) Deno.chmodSync(dst, (info.mode ?? 0o644) & 0o7777);
    this.#xattrs(src, dst);
    const mtime = info.mtime?.getTime() ?? Date.now();
    this.#sys.lutimes(dst, info.atime?.getTime() ?? mtime, mtime);
  }

  #xattrs(src: string, dst: string): void {
    let names: string[];
    try {
      names = this.#sys.llistxattr(src);
    } catch {
      return; // A file system without xattrs.
    }
    for (const name of names) {
      try {
        const value = this.#sys.lgetxattr(src, name);
        if (value) this.#sys.lsetxattr(dst, name, value);
      } catch { /* Not every attribute may be set everywhere (trusted.*, security.* without rights) */ }
    }
  }
}

/**
 * Copies `src` (a file, folder or symlink, not followed) to `dst`: a folder is merged into a folder
 * already at `dst`, anything else replaces a non-folder there.
 */
export async function copyTree(
  src: string,
  dst: string,
  options: TreeCopyOptions = {},
): Promise<TreeCopyResult> {
  const copier = new TreeCopier(options);
  await copier.entry(src, dst, options.followTop ? Deno.statSync(src) : Deno.lstatSync(src));
  return copier.result;
}

/** Copies the entries of folder `src` into the existing folder `dst`, leaving `dst`'s own attributes. */
export async function copyChildren(
  src: string,
  dst: string,
  options: TreeCopyOptions = {},
): Promise<TreeCopyResult> {
  const copier = new TreeCopier(options);
  await copier.children(src, dst);
  return copier.result;
}
