/**
 * /etc/passwd and /etc/group of a container's root filesystem, parsed as runc's libcontainer/user does,
 * and read with symlinks resolved inside the rootfs (continuity's fs.RootPath) so an image cannot point
 * the lookup at the host's files.
 */
import { resolveInRoot as resolvePathInRoot } from "../base/root_path.ts";

export interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

export interface GroupEntry {
  readonly name: string;
  readonly gid: number;
  readonly members: readonly string[];
}

/** The two files as text; undefined when the rootfs has no such file. */
export interface UserDb {
  readonly passwd?: string;
  readonly group?: string;
}

const int = (s: string | undefined): number => {
  const n = Number.parseInt(s ?? "", 10);
  return Number.isFinite(n) ? n : 0;
};

function lines(text: string): string[][] {
  return text.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => l.split(":"));
}

export function parsePasswd(text: string): PasswdEntry[] {
  return lines(text).map((f) => ({ name: f[0] ?? "", uid: int(f[2]), gid: int(f[3]), home: f[5] ?? "" }));
}

export function parseGroup(text: string): GroupEntry[] {
  return lines(text).map((f) => ({
    name: f[0] ?? "",
    gid: int(f[2]),
    members: (f[3] ?? "").split(",").filter((m) => m !== ""),
  }));
}

/**
 * `path` inside `root` with every symlink resolved relative to `root`, never leaving it: an absolute
 * link target is taken from the rootfs, and `..` stops at its top.
 */
export function resolveInRoot(root: string, path: string): Promise<string> {
  return Promise.resolve().then(() => resolvePathInRoot(root, path, { followLast: true }));
}

/** Reads /etc/passwd and /etc/group of a mounted rootfs. */
export async function userDbFromRootfs(root: string): Promise<UserDb> {
  const read = async (path: string) => {
    try {
      return await Deno.readTextFile(await resolveInRoot(root, path));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  };
  const [passwd, group] = await Promise.all([read("/etc/passwd"), read("/etc/group")]);
  return { passwd, group };
}
