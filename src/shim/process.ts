/**
 * One process of a container: its init or an exec. Keeps what containerd asks about a process (pid,
 * stdio, exit status and time) and lets any number of Wait calls block until it has exited. The exit
 * state stays until the process is deleted, so a daemon that reconnects after a restart still reads it.
 */

import type { UnixNanos } from "../base/clock.ts";
import type { Exit } from "./reaper.ts";
import type { ProcessStdio, StdioPaths } from "./stdio.ts";

export type ProcessState = "created" | "running" | "stopped";

export interface ExitState {
  readonly status: number;
  readonly exitedAt: UnixNanos;
}

export class Process {
  /** The exec id, or "" for the init process. */
  readonly execId: string;
  readonly stdioPaths: StdioPaths;
  /** For an exec: the OCI process object; absent for init (it is in config.json). */
  readonly spec: Record<string, unknown> | undefined;
  pid = 0;
  stdio: ProcessStdio | undefined;
  #state: ProcessState = "created";
  #exit: ExitState | undefined;
  readonly #exited: Promise<ExitState>;
  #resolveExited!: (e: ExitState) => void;
  readonly #reaped: Promise<void>;
  #resolveReaped!: () => void;
  /** Exits wait for this, so that a start event always goes out before the exit event. */
  #startGate: Promise<void> = Promise.resolve();

  constructor(execId: string, stdioPaths: StdioPaths, spec?: Record<string, unknown>) {
    this.execId = execId;
    this.stdioPaths = stdioPaths;
    this.spec = spec;
    this.#exited = new Promise((r) => this.#resolveExited = r);
    this.#reaped = new Promise((r) => this.#resolveReaped = r);
  }

  get isInit(): boolean {
    return this.execId === "";
  }

  get state(): ProcessState {
    return this.#state;
  }

  get exit(): ExitState | undefined {
    return this.#exit;
  }

  /** Resolves with the exit status once the process has exited. */
  wait(): Promise<ExitState> {
    return this.#exited;
  }

  /** Settles as soon as the process is known to have exited, before any start gate. */
  reaped(): Promise<void> {
    return this.#reaped;
  }

  markRunning(): void {
    if (this.#state === "created") this.#state = "running";
  }

  /** Holds exit reports back until `gate` settles (the start event has been queued). */
  gateExits(gate: Promise<void>): void {
    this.#startGate = gate.catch(() => {});
  }

  /**
   * Records the exit (once) after the start gate and after `before` (work that must be done before
   * anyone hears of the exit); `report` then publishes it.
   */
  onExit(exit: Exit, report: (p: Process, e: ExitState) => void, before?: () => Promise<void>): void {
    this.#resolveReaped();
    this.#startGate.then(async () => {
      await before?.().catch(() => {});
      this.setExited({ status: exit.status, exitedAt: exit.exitedAt }, report);
    });
  }

  setExited(exit: ExitState, report?: (p: Process, e: ExitState) => void): void {
    if (this.#exit) return;
    this.#resolveReaped();
    this.#exit = exit;
    this.#state = "stopped";
    this.#resolveExited(exit);
    report?.(this, exit);
  }
}
