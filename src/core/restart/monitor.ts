import type { BasicLogger } from "../../base/log.ts";
import { decide, type ObservedTask, RestartLabels } from "./policy.ts";

/** A container as the monitor needs it. */
export interface RestartContainer {
  readonly id: string;
  readonly labels: Readonly<Record<string, string>>;
  /** When it was created or last updated, in milliseconds since 1970. */
  readonly changedAtMs: number;
}

/**
 * What the monitor drives: the daemon's containers and tasks, in-process (containerd's monitor uses
 * an in-memory client over the same services). Tests pass a fake.
 */
export interface RestartHost {
  namespaces(): string[];
  /** The containers of `ns` that carry the restart status label. */
  containers(ns: string): RestartContainer[];
  /** One container, or undefined when it is gone. */
  container(ns: string, id: string): RestartContainer | undefined;
  task(ns: string, id: string): Promise<ObservedTask>;
  /** containerd's killTask: SIGKILL to every process of a live task, wait for its exit, delete it. */
  removeTask(ns: string, id: string, signal: AbortSignal): Promise<void>;
  /** A new task from the container's spec, rootfs and runtime with this IO, started; returns its pid. */
  startTask(
    ns: string,
    id: string,
    io: { stdout: string; stderr: string },
    signal: AbortSignal,
  ): Promise<number>;
  /** Sets these labels on the container (the others are kept). */
  setLabels(ns: string, id: string, labels: Readonly<Record<string, string>>): void;
}

export interface RestartMonitorOptions {
  /** containerd's `interval`: how often every labelled container is checked (default 10 s). */
  readonly intervalMs?: number;
  readonly log: BasicLogger;
  /** Milliseconds since 1970; Date.now by default. */
  readonly clock?: () => number;
  /** The shortest time between two starts of a container that keeps failing; it doubles up to the interval. */
  readonly backoffMs?: number;
  /** A task that ran this long before it stopped starts again without delay (Docker's 10 s). */
  readonly backoffResetMs?: number;
}

const defaultIntervalMs = 10_000;
const defaultBackoffMs = 100;
const defaultBackoffResetMs = 10_000;

interface Backoff {
  readonly startedAt: number;
  readonly delayMs: number;
}

/**
 * containerd's restart monitor (`io.containerd.internal.v1.restart`): keeps the task of every container
 * labelled `containerd.io/restart.status` in that status. It checks them all at start and every
 * interval as containerd does, and one container at once when its task exits, so a `--restart always`
 * container is back in milliseconds rather than up to 10 s later. A container that keeps failing is
 * started again after a delay that doubles from 100 ms up to the interval, as Docker's restart manager.
 */
export class RestartMonitor {
  readonly #host: RestartHost;
  readonly #log: BasicLogger;
  readonly #intervalMs: number;
  readonly #clock: () => number;
  readonly #backoffMs: number;
  readonly #backoffResetMs: number;
  readonly #abort = new AbortController();
  /** Each container is handled by one reconcile at a time; a second request runs it once more after. */
  readonly #inFlight = new Map<string, Promise<void>>();
  readonly #again = new Set<string>();
  readonly #timers = new Map<string, ReturnType<typeof setTimeout>>();
  readonly #backoff = new Map<string, Backoff>();
  #loop?: Promise<void>;

  constructor(host: RestartHost, options: RestartMonitorOptions) {
    this.#host = host;
    this.#log = options.log;
    this.#intervalMs = options.intervalMs || defaultIntervalMs;
    this.#clock = options.clock ?? Date.now;
    this.#backoffMs = options.backoffMs ?? defaultBackoffMs;
    this.#backoffResetMs = options.backoffResetMs ?? defaultBackoffResetMs;
  }

  /** Starts the loop: a boot pass at once (tasks lost with the host or the daemon), then every interval. */
  start(): void {
    if (this.#loop) return;
    this.#loop = this.#run();
  }

  /** A task exited (containerd's TaskExit of its init process): check its container now. */
  taskExited(ns: string, id: string): void {
    if (this.#abort.signal.aborted) return;
    this.reconcileOne(ns, id).catch((err) => this.#warn("cannot reconcile container", ns, id, err));
  }

  /** One pass over every labelled container of every namespace. */
  async reconcileAll(options: { boot?: boolean } = {}): Promise<void> {
    const work: Promise<void>[] = [];
    for (const ns of this.#host.namespaces()) {
      let containers: RestartContainer[];
      try {
        containers = this.#host.containers(ns);
      } catch (err) {
        this.#warn("cannot list containers", ns, "", err);
        continue;
      }
      for (const c of containers) {
        work.push(
          this.reconcileOne(ns, c.id, options).catch((err) =>
            this.#warn("cannot reconcile container", ns, c.id, err)
          ),
        );
      }
    }
    await Promise.all(work);
  }

  /** Brings one container's task to its desired status, when its policy says so. */
  reconcileOne(ns: string, id: string, options: { boot?: boolean } = {}): Promise<void> {
    const k = key(ns, id);
    const running = this.#inFlight.get(k);
    if (running) {
      this.#again.add(k);
      return running;
    }
    const p = (async () => {
      try {
        await this.#reconcile(ns, id, options.boot ?? false);
      } finally {
        this.#inFlight.delete(k);
      }
      if (this.#again.delete(k) && !this.#abort.signal.aborted) await this.reconcileOne(ns, id);
    })();
    this.#inFlight.set(k, p);
    return p;
  }

  /** Stops the loop and the timers, and waits for the changes under way. */
  async close(): Promise<void> {
    this.#abort.abort();
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    await this.#loop;
    while (this.#inFlight.size > 0) await Promise.allSettled(this.#inFlight.values());
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    let boot = true;
    while (!signal.aborted) {
      await this.reconcileAll({ boot }).catch((err) =>
        this.#warn("cannot reconcile containers", "", "", err)
      );
      boot = false;
      await sleep(this.#intervalMs, signal);
    }
  }

  async #reconcile(ns: string, id: string, boot: boolean): Promise<void> {
    const signal = this.#abort.signal;
    if (signal.aborted) return;
    const c = this.#host.container(ns, id);
    if (!c || c.labels[RestartLabels.status] === undefined) return;
    const task = await this.#host.task(ns, id);
    const decision = decide(c.labels, task, { boot });
    const fields = { namespace: ns, id };
    switch (decision.action) {
      case "none":
        return;
      case "stop":
        this.#log.info("restart monitor stops task: its desired status is stopped", fields);
        await this.#host.removeTask(ns, id, signal);
        return;
      case "start":
        break;
    }
    const now = this.#clock();
    // A client that just created the container (or set its labels, as `docker start` does) is about to
    // create its task: starting one here would race it. The next pass starts it if the client did not.
    if (task.status === "absent" && !boot && now - c.changedAtMs < this.#intervalMs) return;
    const wait = this.#waitBeforeStart(ns, id, now);
    if (wait > 0) return;
    this.#host.setLabels(ns, id, decision.labels);
    // As containerd: the old task goes first (its postStop hooks run, its bundle is freed).
    await this.#host.removeTask(ns, id, signal);
    if (signal.aborted) return;
    const pid = await this.#host.startTask(
      ns,
      id,
      { stdout: decision.stdout, stderr: decision.stderr },
      signal,
    );
    this.#log.info("restart monitor started task again", {
      ...fields,
      pid,
      count: decision.labels[RestartLabels.count],
      exitStatus: task.exitStatus,
      previous: task.status,
    });
  }

  /** Milliseconds until this container may start again (a timer is set for then), or 0 to start now. */
  #waitBeforeStart(ns: string, id: string, now: number): number {
    const k = key(ns, id);
    const last = this.#backoff.get(k);
    const failing = last !== undefined && now - last.startedAt < this.#backoffResetMs;
    const notBefore = failing ? last.startedAt + last.delayMs : now;
    if (notBefore > now) {
      if (!this.#timers.has(k)) {
        this.#timers.set(
          k,
          setTimeout(() => {
            this.#timers.delete(k);
            this.taskExited(ns, id);
          }, notBefore - now),
        );
      }
      return notBefore - now;
    }
    const delayMs = failing
      ? Math.min(Math.max(last.delayMs * 2, this.#backoffMs), this.#intervalMs)
      : this.#backoffMs;
    this.#backoff.set(k, { startedAt: now, delayMs });
    return 0;
  }

  #warn(msg: string, ns: string, id: string, err: unknown): void {
    if (this.#abort.signal.aborted) return;
    this.#log.warn(msg, { namespace: ns, id, error: (err as Error)?.message ?? String(err) });
  }
}

function key(ns: string, id: string): string {
  return `${ns}\0${id}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
