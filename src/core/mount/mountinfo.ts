/**
 * /proc/self/mountinfo, parsed as moby/sys/mountinfo does, and containerd's mount.Lookup: the mount a
 * path lives on. The CRI asks it whether a volume's source may propagate mounts (shared, or a slave).
 */
import { notFound } from "../../base/errors.ts";

export interface MountInfo {
  readonly id: number;
  readonly parent: number;
  readonly major: number;
  readonly minor: number;
  /** The path of the mount's root inside its file system. */
  readonly root: string;
  readonly mountpoint: string;
  readonly options: string;
  /** The optional fields, space separated: `shared:N`, `master:N`, `propagate_from:N`, `unbindable`. */
  readonly optional: string;
  readonly fsType: string;
  readonly source: string;
  readonly vfsOptions: string;
}

/** The kernel writes space, tab, newline and backslash in paths as octal escapes (`\040`). */
const unescape = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    if (sep < 0 || f.length < sep + 3) {
      throw new Error(`Cannot parse mountinfo line "${line}": too few fields`);
    }
    const [major, minor] = f[2]!.split(":").map(Number);
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      major: major ?? 0,
      minor: minor ?? 0,
      root: unescape(f[3]!),
      mountpoint: unescape(f[4]!),
      options: f[5]!,
      optional: f.slice(6, sep).join(" "),
      fsType: f[sep + 1] ?? "",
      source: unescape(f[sep + 2] ?? ""),
      vfsOptions: f[sep + 3] ?? "",
    });
  }
  return out;
}

/** Lexically clean like Go's filepath.Clean (absolute paths). */
function clean(path: string): string {
  const parts: string[] = [];
  for (const p of path.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  return "/" + parts.join("/");
}

/**
 * containerd's mount.Lookup: of the mounts whose mount point is a string prefix of `path` (moby's
 * ParentsFilter compares strings, not path components), the one with the longest mount point; the
 * first listed wins a tie.
 */
export function lookupMount(path: string, mounts: readonly MountInfo[]): MountInfo {
  const dir = clean(path);
  let best: MountInfo | undefined;
  for (const m of mounts) {
    if (!dir.startsWith(m.mountpoint)) continue;
    if (!best || m.mountpoint.length > best.mountpoint.length) best = m;
  }
  if (!best) throw notFound(`Cannot find the mount info for "${dir}"`);
  return best;
}

/** The mounts of this process's mount namespace. */
export async function selfMountInfo(): Promise<MountInfo[]> {
  return parseMountInfo(await Deno.readTextFile("/proc/self/mountinfo"));
}
