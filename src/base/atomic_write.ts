/**
 * Files that readers must never see half written (bundle records, shim addresses, ingest metadata):
 * written under a temporary name beside the target, then renamed over it. A crash leaves either the
 * old file or the new one, and at worst a `.name.tmp` file that the next write replaces.
 */

export interface AtomicWriteOptions {
  /** Permissions of a new file (default 0o644, less the umask). */
  readonly mode?: number;
}

function tempPath(path: string): string {
  const slash = path.lastIndexOf("/");
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.tmp`;
}

/**
 * Synchronous on purpose where it is used for a few small files on a hot path (task create): each is
 * ~20 µs as a syscall but ~0.2 ms as a round trip through Deno's blocking pool.
 */
export function writeFileAtomicSync(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
) {
  const tmp = tempPath(path);
  if (typeof data === "string") Deno.writeTextFileSync(tmp, data, { mode: options.mode });
  else Deno.writeFileSync(tmp, data, { mode: options.mode });
  Deno.renameSync(tmp, path);
}

export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const tmp = tempPath(path);
  if (typeof data === "string") await Deno.writeTextFile(tmp, data, { mode: options.mode });
  else await Deno.writeFile(tmp, data, { mode: options.mode });
  await Deno.rename(tmp, path);
}
