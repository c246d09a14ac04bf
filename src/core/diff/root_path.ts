/**
 * Path safety for unpacking into a root, after containerd's fs.RootPath: entry names are cleaned
 * lexically (a ".." that climbs above the root is an error, a leading "/" is dropped), and symlinks
 * met on the way are followed as if the root were "/", so nothing resolves outside it.
 */
import { invalidArgument } from "../../base/errors.ts";

const MAX_SYMLINKS = 255;

/** The components of an entry name relative to the root, or invalidArgument when it climbs out. */
export function cleanEntryPath(name: string, what = "Layer entry"): string[] {
  const out: string[] = [];
  for (const c of name.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") {
      if (out.length === 0) throw invalidArgument(`${what} "${name}" escapes the root`);
      out.pop();
      continue;
    }
    if (c.includes("\0")) throw invalidArgument(`${what} "${name}" contains a NUL byte`);
    out.push(c);
  }
  return out;
}

/**
 * The real path of `components` under `root`, every symlink among them followed inside the root.
 * Components that do not exist yet are taken literally.
 */
export function resolveInRoot(root: string, components: readonly string[]): string {
  let resolved: string[] = [];
  const queue = [...components];
  let links = 0;
  while (queue.length > 0) {
    const c = queue.shift()!;
    if (c === "" || c === ".") continue;
    if (c === "..") {
      resolved.pop();
      continue;
    }
    const path = `${root}/${[...resolved, c].join("/")}`;
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      resolved.push(c);
      continue;
    }
    if (!st.isSymlink) {
      resolved.push(c);
      continue;
    }
    if (++links > MAX_SYMLINKS) {
      throw invalidArgument(`Cannot resolve "${components.join("/")}" in ${root}: too many symlinks`);
    }
    const target = Deno.readLinkSync(path);
    if (target.startsWith("/")) resolved = [];
    queue.unshift(...target.split("/"));
  }
  return resolved.length === 0 ? root : `${root}/${resolved.join("/")}`;
}
