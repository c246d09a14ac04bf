import type { Usage } from "./snapshotter.ts";

/** Bytes allocated (st_blocks × 512) and inodes under `dir`, each hard-linked inode counted once. */
export async function diskUsage(dir: string, options: { signal?: AbortSignal } = {}): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0;
  let inodes = 0;
  const visit = async (path: string): Promise<void> => {
    options.signal?.throwIfAborted();
    const st = await Deno.lstat(path);
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      inodes++;
      size += (st.blocks ?? 0) * 512;
    }
    if (st.isDirectory) {
      for await (const e of Deno.readDir(path)) await visit(`${path}/${e.name}`);
    }
  };
  await visit(dir);
  return { size, inodes };
}

/**
 * containerd's fs.DiffUsage for a snapshot that shares its parent's extents (btrfs): bytes and inodes
 * of what `dir` adds or changes over `base`. A file is unchanged when the same path in `base` is the
 * same inode (snapshots keep inode numbers) with the same size and change time.
 */
export async function diffUsage(
  base: string,
  dir: string,
  options: { signal?: AbortSignal } = {},
): Promise<Usage> {
  const seen = new Set<number>();
  let size = 0;
  let inodes = 0;
  const visit = async (rel: string): Promise<void> => {
    options.signal?.throwIfAborted();
    const st = await Deno.lstat(`${dir}${rel}`);
    const old = await Deno.lstat(`${base}${rel}`).catch(() => undefined);
    const same = old !== undefined && old.ino === st.ino && old.size === st.size &&
      old.ctime?.getTime() === st.ctime?.getTime() && old.isDirectory === st.isDirectory;
    if (!same && st.ino !== null && !seen.has(st.ino)) {
      seen.add(st.ino);
      inodes++;
      size += (st.blocks ?? 0) * 512;
    }
    if (st.isDirectory) {
      for await (const e of Deno.readDir(`${dir}${rel}`)) await visit(`${rel}/${e.name}`);
    }
  };
  await visit("");
  return { size, inodes };
}
