import { failedPrecondition } from "../base/errors.ts";

/** sun_path holds 108 bytes on Linux, the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES = 107;

/**
 * Makes sure a daemon may listen on the unix socket `path`, without touching anything a live process
 * owns: the path fits a socket address, its folder exists (or is made), and no process serves it. A
 * socket left by a daemon that died is removed. Every refusal names the path and the cause.
 */
export async function claimSocketPath(path: string): Promise<void> {
  await checkSocketPath(path);
  const dir = dirname(path);
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o711 });
  } catch (err) {
    throw failedPrecondition(
      `Cannot listen on ${path}: cannot create folder ${dir}: ${(err as Error).message}`,
    );
  }
  try {
    await Deno.remove(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw failedPrecondition(
        `Cannot listen on ${path}: cannot remove the stale socket: ${(err as Error).message}`,
      );
    }
  }
}

/** The path fits a socket address, and nothing but a dead socket is there. */
async function checkSocketPath(path: string): Promise<void> {
  if (new TextEncoder().encode(path).length > MAX_SOCKET_PATH_BYTES) {
    throw failedPrecondition(
      `Cannot listen on ${path}: the path is longer than the ${MAX_SOCKET_PATH_BYTES} bytes a unix socket address holds`,
    );
  }
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) return;
    throw failedPrecondition(`Cannot listen on ${path}: ${(err as Error).message}`);
  }
  if (!info.isSocket) {
    throw failedPrecondition(`Cannot listen on ${path}: a file that is not a socket is in the way`);
  }
  if (await isServed(path)) {
    throw failedPrecondition(
      `Cannot listen on ${path}: another daemon is serving it; stop it or pick another --address`,
    );
  }
}

/** Whether some process accepts connections on the unix socket at `path`. */
export async function isServed(path: string): Promise<boolean> {
  try {
    (await Deno.connect({ transport: "unix", path })).close();
    return true;
  } catch {
    return false;
  }
}

/** Opens a unix socket listener on a claimed path, naming the path when the kernel refuses. */
export function listenUnix(path: string): Deno.UnixListener {
  try {
    return Deno.listen({ transport: "unix", path });
  } catch (err) {
    throw failedPrecondition(`Cannot listen on ${path}: ${(err as Error).message}`);
  }
}

export function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}
