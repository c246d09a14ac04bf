/**
 * A path inside a root folder (a container's, a layer being unpacked, a rootfs whose /etc/passwd is
 * read), resolved on the host as the container would see it: every
 * symlink on the way is read and followed with the root standing for "/", and `..` never climbs above
 * the root (securejoin's rule, which Docker's FollowSymlinkInScope applies). The kernel is never handed
 * a symlink or a `..` of the container's, so `/proc/<pid>/root/...` and a mounted snapshot are both safe.
 *
 * What is returned is a host path whose folders were real folders when looked at; a container that
 * swaps one for a symlink between this check and the use can still race it (as it can Docker's).
 */
import { invalidArgument } from "./errors.ts";

/** containerd's fs.RootPath limit on symlinks followed in one resolution (Linux's own is 40). */
const MAX_SYMLINKS = 255;

export interface ResolveOptions {
  /** Follow a symlink in the last component too (default false: it names the link itself). */
  readonly followLast?: boolean;
}

function split(path: string): string[] {
  return path.split("/").filter((c) => c !== "" && c !== ".");
}

/**
 * The host path of `path` (absolute, or relative to "/") inside `root`. Components that do not exist
 * are kept as given (so a new file's path resolves too); a `..` after them is applied lexically.
 */
export function resolveInRoot(root: string, path: string, options: ResolveOptions = {}): string {
  const base = root.replace(/\/+$/, "");
  const pending = split(path);
  const done: string[] = [];
  let links = 0;
  let missing = false;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === "..") {
      done.pop();
      continue;
    }
    if (missing) {
      done.push(name);
      continue;
    }
    const host = `${base}/${[...done, name].join("/")}`;
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(host);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory)) throw err;
      missing = true;
      done.push(name);
      continue;
    }
    const last = pending.length === 0;
    if (!info.isSymlink || (last && !options.followLast)) {
      done.push(name);
      continue;
    }
    if (++links > MAX_SYMLINKS) {
      throw invalidArgument(`Cannot resolve "${path}" in ${base}: too many levels of symbolic links`);
    }
    const target = Deno.readLinkSync(host);
    if (target.startsWith("/")) done.length = 0;
    pending.unshift(...split(target));
  }
  return done.length ? `${base}/${done.join("/")}` : base;
}

/** The container path of a host path below `root` (for messages): `/` plus what follows the root. */
export function containerPathOf(root: string, host: string): string {
  const base = root.replace(/\/+$/, "");
  return host === base ? "/" : host.startsWith(`${base}/`) ? host.slice(base.length) : host;
}
