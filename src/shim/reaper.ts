/**
 * The shim's one reaper. The shim is the child subreaper of its containers: when runc exits, the
 * container's init and exec processes are reparented to the shim, and their exits arrive here. Deno waits
 * for the processes it spawned itself (runc), so those are skipped (see ffi/process.ts); everything else is
 * reaped on SIGCHLD and handed to whoever claimed its pid. An exit that comes before its pid is claimed
 * (a short-lived exec can end before runc has returned) is kept for a while, so it is never lost.
 */

import { now, type UnixNanos } from "../base/clock.ts";
import {
  LibcProcessSyscalls,
  type ProcessSyscalls,
  reapOrphans,
  type WaitStatus,
} from "../../ffi/process.ts";

export interface Exit {
  readonly pid: number;
  /** containerd's exit status: the exit code, or 128 + signal. */
  readonly status: number;
  /** When the reaper saw it, in nanoseconds since 1970. */
  readonly exitedAt: UnixNanos;
}

/** How long an unclaimed exit is kept: long enough for runc to return and its pid file to be read. */
const UNCLAIMED_TTL_MS = 60_000;
/**
 * How long after a SIGCHLD the scan for orphans runs. The scan reads the shim's children lists and their
 * stat files (~0.15 ms; on a kernel without CONFIG_PROC_CHILDREN every /proc/<pid>/stat, ~2 ms per
 * hundred processes on the host), on the event loop; run on each SIGCHLD it delayed every CNI plugin's
 * and runc's result by that much. Claimed pids are checked at once; strays can wait, and a burst shares
 * one scan.
 */
const ORPHAN_SCAN_DELAY_MS = 50;

export interface ReaperOptions {
  readonly syscalls?: ProcessSyscalls;
  /** Called for exits nobody claimed within the TTL (helpers, stray orphans). */
  readonly onUnclaimed?: (exit: Exit) => void;
}

export class Reaper {
  readonly #sys: ProcessSyscalls;
  readonly #skip = new Set<number>();
  readonly #claims = new Map<number, (exit: Exit) => void>();
  readonly #unclaimed = new Map<number, Exit>();
  readonly #onUnclaimed: (exit: Exit) => void;
  #listening = false;
  #scanTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #onSignal = () => this.reap();

  constructor(options: ReaperOptions = {}) {
    this.#sys = options.syscalls ?? new LibcProcessSyscalls();
    this.#onUnclaimed = options.onUnclaimed ?? (() => {});
  }

  /** Makes this process the child subreaper and reaps on every SIGCHLD until stop(). */
  start(): void {
    this.#sys.setChildSubreaper(true);
    if (!this.#listening) {
      Deno.addSignalListener("SIGCHLD", this.#onSignal);
      this.#listening = true;
    }
    this.reapAll();
  }

  stop(): void {
    if (this.#listening) Deno.removeSignalListener("SIGCHLD", this.#onSignal);
    this.#listening = false;
    clearTimeout(this.#scanTimer);
    this.#scanTimer = undefined;
  }

  /**
   * Leaves a Deno.Command child to Deno until its status settles. Must be called synchronously right
   * after spawn(): no reap can run in between.
   */
  track(child: Deno.ChildProcess): void {
    const pid = child.pid;
    this.#skip.add(pid);
    child.status.finally(() => this.#skip.delete(pid)).catch(() => {});
  }

  /** Asks to be told when `pid` exits; at once if it already has. A pid has one claimant. */
  claim(pid: number, onExit: (exit: Exit) => void): void {
    const early = this.#unclaimed.get(pid);
    if (early) {
      this.#unclaimed.delete(pid);
      queueMicrotask(() => onExit(early));
      return;
    }
    this.#claims.set(pid, onExit);
    // The exit may be waiting as a zombie that no SIGCHLD has announced yet.
    this.reap();
  }

  unclaim(pid: number): void {
    this.#claims.delete(pid);
  }

  /**
   * Reaps the claimed pids that exited, at once, and every other exited child that is not Deno's a
   * little later; runs on SIGCHLD and whenever a pid is claimed.
   */
  reap(): void {
    const at = now();
    for (const pid of [...this.#claims.keys()]) {
      let st: WaitStatus | null;
      try {
        st = this.#sys.waitpidNoHang(pid);
      } catch {
        continue; // not (yet) our child: runc still holds it, and its exit comes after runc's
      }
      if (st) this.#deliver([st], at);
    }
    // Without SIGCHLD (a reaper driven by hand) there is no later: scan now.
    if (!this.#listening) return this.reapAll();
    if (this.#scanTimer === undefined) {
      const timer = setTimeout(() => {
        this.#scanTimer = undefined;
        this.reapAll();
      }, ORPHAN_SCAN_DELAY_MS);
      Deno.unrefTimer(Number(timer));
      this.#scanTimer = timer;
    }
  }

  /** Reaps every exited child that is not Deno's, claimed or not. */
  reapAll(): void {
    let statuses: WaitStatus[];
    try {
      statuses = reapOrphans(this.#sys, this.#skip);
    } catch {
      return; // /proc unreadable for a moment: the next SIGCHLD tries again
    }
    this.#deliver(statuses, now());
  }

  #deliver(statuses: readonly WaitStatus[], at: UnixNanos): void {
    for (const st of statuses) {
      const exit: Exit = { pid: st.pid, status: st.status, exitedAt: at };
      const onExit = this.#claims.get(st.pid);
      if (onExit) {
        this.#claims.delete(st.pid);
        onExit(exit);
        continue;
      }
      this.#unclaimed.set(st.pid, exit);
      const timer = setTimeout(() => {
        if (this.#unclaimed.get(st.pid) === exit) {
          this.#unclaimed.delete(st.pid);
          this.#onUnclaimed(exit);
        }
      }, UNCLAIMED_TTL_MS);
      Deno.unrefTimer(Number(timer));
    }
  }
}
