/**
 * Network namespaces for pods, held open by a bind mount of their nsfs file (containerd's pkg/netns):
 * `<dir>/cni-<random>` stays a live namespace after every process in it has gone, and CNI plugins get
 * its path as CNI_NETNS.
 *
 * containerd makes the namespace by unshare(CLONE_NEWNET) on a locked OS thread. A Deno thread cannot be
 * locked and moved like that (the runtime's threads are shared with V8 and tokio), so a short helper
 * process makes it instead: util-linux `unshare --net` runs `cat` in a new namespace, and Berth itself
 * bind-mounts `/proc/<pid>/ns/net` through ffi/mount.ts before letting the helper end.
 */
import { BerthError, failedPrecondition } from "../../base/errors.ts";
import { outputClean, spawnClean } from "../../base/spawn.ts";
import { SyscallError } from "../../../ffi/libc.ts";
import {
  EINVAL,
  ENOENT,
  MNT_DETACH,
  type MountSyscalls,
  mountSyscalls,
  MS_BIND,
  MS_PRIVATE,
  MS_REC,
  MS_SHARED,
  UMOUNT_NOFOLLOW,
} from "../../../ffi/mount.ts";
import { isMountPoint, mountsBelow } from "./mountinfo.ts";

export interface NetnsOptions {
  /** The mount seam; a test passes a RecordingMountSyscalls. */
  readonly syscalls?: MountSyscalls;
  readonly signal?: AbortSignal;
  /** Deadline for the helper process (default 10 s). */
  readonly timeoutMs?: number;
}

/** containerd's name shape: cni-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx from 16 random bytes. */
function randomName(): string {
  const hex = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0"))
    .join("");
  return `cni-${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}

/**
 * Makes `dir` a mount point with a peer group of its own, once. Without it a netns mount under a folder
 * of a shared root (systemd's default) would propagate to every peer of `/`; made private first and then
 * shared, the folder only has peers in mount namespaces copied from this one later (containers that
 * bind it), and those then see a namespace's unmount, so it is not kept alive there by accident. iproute2
 * does the same for /run/netns. A folder that already is a mount point is left as its owner made it.
 */
export function prepareNetnsDir(dir: string, syscalls: MountSyscalls = mountSyscalls()): void {
  Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  // mountinfo lists canonical paths (/var/run/netns is /run/netns there).
  const real = Deno.realPathSync(dir);
  if (isMountPoint(real)) return;
  syscalls.mount(real, real, "", MS_BIND | MS_REC, "");
  syscalls.mount("", real, "", MS_PRIVATE, "");
  syscalls.mount("", real, "", MS_SHARED, "");
}

/**
 * Undoes prepareNetnsDir(): unmounts the folder's own bind mount. Refuses while a namespace is still
 * mounted in it, since detaching the folder would silently detach those too.
 */
export function releaseNetnsDir(dir: string, syscalls: MountSyscalls = mountSyscalls()): void {
  let real: string;
  try {
    real = Deno.realPathSync(dir);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  const held = mountsBelow(real);
  if (held.length > 0) {
    throw failedPrecondition(
      `Cannot release netns folder ${dir}: ${held.length} namespaces are still mounted in it`,
    );
  }
  while (isMountPoint(real)) syscalls.unmount(real, MNT_DETACH);
}

/** Creates a network namespace held at a new `<dir>/cni-<random>`; resolves to its path. */
export async function createNetns(dir: string, options: NetnsOptions = {}): Promise<string> {
  const syscalls = options.syscalls ?? mountSyscalls();
  prepareNetnsDir(dir, syscalls);
  const path = `${dir}/${randomName()}`;
  // An empty file to mount on; createNew fails rather than reuse a path someone else holds.
  (await Deno.open(path, { createNew: true, write: true, mode: 0o444 })).close();
  try {
    await holdNewNetns(path, syscalls, options);
  } catch (err) {
    await removeNetns(path, { syscalls }).catch(() => {});
    throw err;
  }
  return path;
}

async function holdNewNetns(path: string, syscalls: MountSyscalls, options: NetnsOptions): Promise<void> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 10_000);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  // `unshare` execs `cat` after unshare(2): once cat echoes a byte, its /proc/<pid>/ns/net is the new one.
  let child: Deno.ChildProcess;
  try {
    child = spawnClean("unshare", {
      args: ["--net", "--", "cat"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      signal,
    });
  } catch (err) {
    throw new BerthError(
      "unavailable",
      `Cannot create network namespace ${path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const stdin = child.stdin.getWriter();
  const stdout = child.stdout.getReader();
  const stderr = child.stderr.getReader();
  const errText = (async () => {
    const chunks: string[] = [];
    const d = new TextDecoder();
    for (;;) {
      const { value, done } = await stderr.read();
      if (done) return chunks.join("").trim();
      if (chunks.length < 16) chunks.push(d.decode(value, { stream: true }));
    }
  })().catch(() => "");
  let mounted = false;
  try {
    await stdin.write(new Uint8Array([0x0a]));
    const echo = await stdout.read();
    if (echo.done) {
      await stdin.close().catch(() => {});
      const status = await child.status;
      throw new BerthError(
        "internal",
        `Cannot create network namespace ${path}: unshare --net exited (${status.code}): ${await errText}`,
      );
    }
    syscalls.mount(`/proc/${child.pid}/ns/net`, path, "", MS_BIND, "");
    mounted = true;
  } finally {
    await stdin.close().catch(() => {});
    await stdout.cancel().catch(() => {});
    if (!mounted) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await child.status;
    await errText;
  }
}

/**
 * Unmounts and deletes a namespace made by createNetns(). Idempotent: a path that is gone, or no longer
 * mounted, is fine. UMOUNT_NOFOLLOW: the path is the caller's but the folder may be shared with others.
 * Call it after CniManager.teardown(), as containerd does: the bridge plugin finds the masquerade rules
 * to delete through the pod's eth0, and leaks them when the namespace is already gone
 * (containernetworking/plugins#810).
 */
export async function removeNetns(path: string, options: Pick<NetnsOptions, "syscalls"> = {}): Promise<void> {
  const syscalls = options.syscalls ?? mountSyscalls();
  try {
    await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  const real = Deno.realPathSync(path);
  // Unmount until it is a plain file again (a racing second create could have stacked a mount).
  for (let i = 0; i < 8; i++) {
    try {
      syscalls.unmount(path, MNT_DETACH | UMOUNT_NOFOLLOW);
    } catch (err) {
      if (err instanceof SyscallError && (err.errno === EINVAL || err.errno === ENOENT)) break;
      throw err;
    }
    if (!isMountPoint(real)) break;
  }
  await Deno.remove(path).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
}

/** The command that runs `argv` inside the namespace at `path` (util-linux nsenter), for spawning. */
export function netnsCommand(path: string, argv: readonly string[]): { program: string; args: string[] } {
  return { program: "nsenter", args: [`--net=${path}`, "--", ...argv] };
}

/** Runs `argv` inside the namespace at `path` to completion (tests: ping, ip addr, wget). */
export function runInNetns(
  path: string,
  argv: readonly string[],
  options: { signal?: AbortSignal } = {},
): Promise<Deno.CommandOutput> {
  const { program, args } = netnsCommand(path, argv);
  return outputClean(program, { args, stdin: "null", signal: options.signal });
}
