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
