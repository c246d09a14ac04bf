/**
 * Path safety for unpacking into a root, after containerd's fs.RootPath: entry names are cleaned
 * lexically (a ".." that climbs above the root is an error, a leading "/" is dropped), and symlinks
 * met on the way are followed as if the root were "/", so nothing resolves outside it.
 */
import { invalidArgument } from "../../base/errors.ts";
import { resolveInRoot as resolvePathInRoot } from "../../base/root_path.ts";

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
  return resolvePathInRoot(root, components.join("/"), { followLast: true });
}
