/**
 * An exclusive flock(2) on a file, held while `fn` runs. Network create/remove and the OCI hook take the
 * same lock in the CNI conf folder (nerdctl's `.cni-concurrency.lock`, so a nerdctl on the same host
 * waits for Berth and the other way round): a network cannot be removed while a container is being
 * attached to it, and two creates cannot pick the same free subnet.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir) await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
  const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
  try {
    await file.lock(true);
    return await fn();
  } finally {
    // Closing the descriptor releases the lock.
    file.close();
  }
}

/** The lock of a CNI conf folder, nerdctl's name for it. */
export function cniLockPath(confDir: string): string {
  return `${confDir}/.cni-concurrency.lock`;
}
