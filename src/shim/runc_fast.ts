/**
 * Two runc steps taken off the path of a short-lived container, each worth one runc process (~6 ms
 * of Go start-up and state loading here) per `ctr run --rm`:
 *
 * - Start. For a created container, `runc start` only opens `<root>/<id>/exec.fifo`, reads the byte
 *   runc init writes once a reader is there, and removes the FIFO; runc init then execs the user's
 *   process (runc 1.1 libcontainer/container_linux.go exec(); Poststart hooks ran at create). The shim
 *   does the same through its shared poll thread.
 * - Delete. Removing a stopped container's runc state and cgroup need not hold up the answer to
 *   Delete: it runs in the background, and a new container with the same id, or the shim's exit,
 *   waits for it.
 */

import { failedPrecondition, unavailable } from "../base/errors.ts";
import { fdPoller } from "../base/fd_poller.ts";
import type { Runc } from "./runc.ts";

/** Whether `runtime` is runc, whose state folder layout startByExecFifo() relies on. */
export function isRunc(runtime: Runc): boolean {
  return runtime.binary === "runc" || runtime.binary.endsWith("/runc");
}

/**
 * Lets a created runc container's init exec its process. `exited` settles when the init died first,
 * which runc reports as "container process is already dead". Resolves false, having done nothing, when
 * there is no exec FIFO (not a created container, or a runc that keeps its state elsewhere): the caller
 * then runs `runc start`, whose own message says what is wrong.
 */
export async function startByExecFifo(
  runtime: Runc,
  id: string,
  options: { exited: Promise<unknown>; timeoutMs?: number },
): Promise<boolean> {
  const path = `${runtime.root}/${id}/exec.fifo`;
  try {
    Deno.lstatSync(path);
  } catch {
    return false;
  }
  const stream = fdPoller().open(path);
  const reader = stream.getReader();
  let bytes = 0;
  const read = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return "read" as const;
      bytes += value.length;
    }
  })();
  const timers: ReturnType<typeof setTimeout>[] = [];
  const after = <T>(ms: number, v: T) => new Promise<T>((r) => timers.push(setTimeout(() => r(v), ms)));
  try {
    let got = await Promise.race([
      read,
      options.exited.then(() => "exited" as const),
      after(options.timeoutMs ?? 10_000, "late" as const),
    ]);
    // A process that ran and exited at once can be reaped before its byte is seen: all its
    // descriptors are closed by then, so the read ends promptly when it had opened the FIFO.
    if (got === "exited") got = await Promise.race([read, after(100, "exited" as const)]);
    if (bytes === 0) {
      if (got === "exited") {
        throw failedPrecondition(`Cannot start container ${id}: its process is already dead`);
      }
      if (got === "late") {
        throw unavailable(`Cannot start container ${id}: runc init did not answer on ${path}`);
      }
      throw failedPrecondition(`Cannot start container ${id}: it is already running`);
    }
  } finally {
    for (const t of timers) clearTimeout(t);
    await reader.cancel().catch(() => {});
  }
  await Deno.remove(path).catch(() => {});
  return true;
}

/** `runc delete` of stopped containers, run after Delete has been answered. */
export class BackgroundDeletes {
  readonly #pending = new Map<string, Promise<void>>();
  readonly #onError: (id: string, err: unknown) => void;

  constructor(onError: (id: string, err: unknown) => void) {
    this.#onError = onError;
  }

  /**
   * Deletes `id` with `runtime` soon; errors go to the onError callback. Its cgroups go at once: they
   * are what users and tools look at after a delete (runc delete then finds them gone, which it allows).
   */
  delete(runtime: Runc, id: string): void {
    removeCgroups(runtime.root, id);
    const key = `${runtime.root}\0${id}`;
    const before = this.#pending.get(key) ?? Promise.resolve();
    const p: Promise<void> = before
      .then(() => runtime.delete(id))
      .catch((err) => this.#onError(id, err))
      .finally(() => {
        if (this.#pending.get(key) === p) this.#pending.delete(key);
      });
    this.#pending.set(key, p);
  }

  /** Resolves once no delete of `id` under `runtime` is pending (before it is created again). */
  async done(runtime: Runc, id: string): Promise<void> {
    await this.#pending.get(`${runtime.root}\0${id}`);
  }

  /** Resolves once every pending delete has finished (before the shim exits). */
  async settle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending.values());
  }
}

/** rmdir of each cgroup runc recorded for a stopped container (state.json `cgroup_paths`). */
function removeCgroups(root: string, id: string): void {
  let paths: Record<string, string>;
  try {
    paths = JSON.parse(Deno.readTextFileSync(`${root}/${id}/state.json`)).cgroup_paths ?? {};
  } catch {
    return;
  }
  // Controllers mounted together (cpu,cpuacct) share one folder.
  for (const path of new Set(Object.values(paths))) {
    try {
      Deno.removeSync(path);
    } catch { /* gone already, or busy: runc delete tries again */ }
  }
}
