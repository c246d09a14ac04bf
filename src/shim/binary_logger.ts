/**
 * A log URI's logging binary (`binary:///path?key=value`), as containerd's runc shim runs it
 * (pkg/process/io.go NewBinaryIO, io_util.go NewBinaryCmd): the process's stdout on fd 3, its stderr on
 * fd 4, and the write end of a pipe on fd 5 that the binary closes once it is ready; the shim waits for
 * that before the process runs. The URI's query becomes its arguments (key, then value) and its whole
 * environment is CONTAINER_ID and CONTAINER_NAMESPACE.
 *
 * The binary is spawned with posix_spawn, not Deno.Command, so that its exit comes to the shim's one
 * reaper like every other child's: nothing else waits for it and no status is stolen.
 */

import { type FdSyscalls, fdSyscalls } from "../../ffi/fd.ts";
import { type ProcessSyscalls, Signal } from "../../ffi/process.ts";
import { unavailable } from "../base/errors.ts";
import { type FdPoller, fdPoller } from "../base/fd_poller.ts";
import type { Exit, Reaper } from "./reaper.ts";

export interface LoggerTarget {
  /** The binary's absolute path. */
  readonly path: string;
  /** Its arguments after argv[0]. */
  readonly args: readonly string[];
}

export interface LoggerContext {
  readonly namespace: string;
  readonly reaper: Pick<Reaper, "claim">;
  readonly proc: ProcessSyscalls;
  readonly fds?: FdSyscalls;
  readonly poller?: FdPoller;
  /** How long the binary may take to close fd 5. */
  readonly readyTimeoutMs?: number;
  /** How long stop() lets it finish on its own after its input ended, before SIGTERM. */
  readonly graceMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL (containerd gives 12 s). */
  readonly termTimeoutMs?: number;
}

const READY_TIMEOUT_MS = 10_000;
const GRACE_MS = 1_000;
const TERM_TIMEOUT_MS = 12_000;
/** After SIGKILL the exit comes at once; this only bounds a reaper that missed it. */
const KILL_WAIT_MS = 2_000;
/** The binary's descriptors, as containerd numbers them. */
const STDOUT_FD = 3;
const STDERR_FD = 4;
const READY_FD = 5;

export class BinaryLogger {
  readonly pid: number;
  readonly path: string;
  readonly #proc: ProcessSyscalls;
  readonly #exited: Promise<Exit>;
  readonly #graceMs: number;
  readonly #termTimeoutMs: number;
  #exit: Exit | undefined;
  #stopping: Promise<void> | undefined;

  private constructor(pid: number, path: string, ctx: LoggerContext) {
    this.pid = pid;
    this.path = path;
    this.#proc = ctx.proc;
    this.#graceMs = ctx.graceMs ?? GRACE_MS;
    this.#termTimeoutMs = ctx.termTimeoutMs ?? TERM_TIMEOUT_MS;
    // Claimed before anything can await: an exit that came first is kept by the reaper until now.
    this.#exited = new Promise((resolve) =>
      ctx.reaper.claim(pid, (exit) => {
        this.#exit = exit;
        resolve(exit);
      })
    );
  }

  /**
   * Starts the binary for process `id` and waits until it is ready. Resolves with the write ends of its
   * stdout and stderr pipes, which the caller owns (non-blocking, close-on-exec).
   */
  static async start(
    target: LoggerTarget,
    ctx: LoggerContext & { readonly id: string },
  ): Promise<{ logger: BinaryLogger; stdout: number; stderr: number }> {
    const { id } = ctx;
    const fds = ctx.fds ?? fdSyscalls();
    /** Our ends, and the ends the binary gets (closed here once it has them). */
    const mine: number[] = [];
    const theirs: number[] = [];
    const pipe = () => {
      const [r, w] = fds.pipe();
      return { r, w };
    };
    let logger: BinaryLogger | undefined;
    try {
      const out = pipe();
      const err = pipe();
      const ready = pipe();
      mine.push(out.w, err.w, ready.r);
      theirs.push(out.r, err.r, ready.w);
      let pid: number;
      try {
        pid = ctx.proc.spawn(target.path, target.args, {
          env: [`CONTAINER_ID=${id}`, `CONTAINER_NAMESPACE=${ctx.namespace}`],
          fds: new Map([[STDOUT_FD, out.r], [STDERR_FD, err.r], [READY_FD, ready.w]]),
        });
      } catch (cause) {
        throw unavailable(
          `Cannot start logging binary ${target.path} for ${id}: ${(cause as Error).message}`,
          { cause },
        );
      }
      logger = new BinaryLogger(pid, target.path, ctx);
      // Only the binary holds these now: its exit closes fd 5, and ends its input for nobody else.
      for (const fd of theirs.splice(0)) fds.close(fd);
      // #ready closes it, whatever happens.
      mine.splice(mine.indexOf(ready.r), 1);
      await logger.#ready(ready.r, id, fds, ctx);
      for (const fd of [out.w, err.w]) fds.setNonBlocking(fd);
      return { logger, stdout: out.w, stderr: err.w };
    } catch (err) {
      for (const fd of [...mine, ...theirs]) {
        try {
          fds.close(fd);
        } catch { /* already closed */ }
      }
      if (logger) await logger.#kill();
      throw err;
    }
  }

  /**
   * Resolves once the binary closed its fd 5 or wrote to it (its exit closes it too). containerd waits for
   * the pipe's end of file, which never comes while a child the binary started before closing fd 5 still
   * has a copy (`cat <&3 > log &` in a shell script): so the binary's own fd 5 is looked at as well.
   */
  async #ready(readyR: number, id: string, fds: FdSyscalls, ctx: LoggerContext): Promise<void> {
    const timeoutMs = ctx.readyTimeoutMs ?? READY_TIMEOUT_MS;
    const polled = (ctx.poller ?? fdPoller()).attach(readyR);
    const reader = polled.readable.getReader();
    const pipe = linkOf(`/proc/self/fd/${readyR}`);
    let settled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const closedByBinary = async () => {
      for (let delay = 1; !settled; delay = Math.min(delay * 2, 50)) {
        if (linkOf(`/proc/${this.pid}/fd/${READY_FD}`) !== pipe) return true;
        await new Promise((r) => setTimeout(r, delay));
      }
      return false;
    };
    try {
      const ready = await Promise.race([
        reader.read().then(() => true, () => true),
        closedByBinary(),
        new Promise<boolean>((r) => timer = setTimeout(() => r(false), timeoutMs)),
      ]);
      if (!ready) {
        throw unavailable(
          `Logging binary ${this.path} for ${id} did not close its ready pipe (fd ${READY_FD}) within ${timeoutMs} ms`,
        );
      }
    } finally {
      settled = true;
      clearTimeout(timer);
      await reader.cancel().catch(() => {});
      await polled.release();
      fds.close(readyR);
    }
  }

  /** The binary's exit, once the reaper has seen it. */
  get exit(): Exit | undefined {
    return this.#exit;
  }

  wait(): Promise<Exit> {
    return this.#exited;
  }

  /**
   * Ends the binary once its input is closed: it gets a moment to finish on its own, then SIGTERM (so it
   * can flush), then SIGKILL. Resolves once the reaper has its exit.
   */
  stop(): Promise<void> {
    return this.#stopping ??= (async () => {
      if (await this.#exitWithin(this.#graceMs)) return;
      this.#signal(Signal.SIGTERM);
      if (await this.#exitWithin(this.#termTimeoutMs)) return;
      await this.#kill();
    })();
  }

  async #kill(): Promise<void> {
    this.#signal(Signal.SIGKILL);
    await this.#exitWithin(KILL_WAIT_MS);
  }

  #signal(signal: number): void {
    // Not reaped yet, so the pid is still this process's: no other can have taken it.
    if (this.#exit) return;
    try {
      this.#proc.kill(this.pid, signal);
    } catch { /* exited just now */ }
  }

  async #exitWithin(ms: number): Promise<boolean> {
    if (this.#exit) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.#exited.then(() => true),
      new Promise<boolean>((r) => timer = setTimeout(() => r(false), ms)),
    ]);
    clearTimeout(timer);
    return exited;
  }
}

/** What a /proc fd link points to ("pipe:[123]"), or "" when the descriptor is not open. */
function linkOf(path: string): string {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return "";
  }
}
