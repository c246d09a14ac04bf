import { unavailable } from "../../base/errors.ts";
import type { Logger } from "../../base/log.ts";
import { defaultGcConfig, type GcConfig } from "./config.ts";
import type { Collector, GcResult } from "./collector.ts";

/** Time and timers, injectable so that tests can drive the scheduler with a fake clock. */
export interface Clock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as number),
};

/** Where mutations come from: the metadata database (MetadataDB.onMutation). */
export interface MutationSource {
  onMutation(listener: (dirty: boolean) => void): () => void;
  /** Whether references were removed since the last collection (before this scheduler listened too). */
  readonly dirty?: boolean;
}

export interface GcSchedulerOptions {
  readonly config?: Partial<GcConfig>;
  readonly mutations?: MutationSource;
  readonly clock?: Clock;
  readonly log?: Logger;
}

/** containerd's interval before the first collection has measured a pause. */
const INITIAL_INTERVAL_MS = 1000;
/** containerd waits as long again as the last gap, plus this, after a failed collection. */
const FAILURE_BACKOFF_MS = 1000;

interface Counts {
  triggered: boolean;
  deletions: number;
  mutations: number;
}

interface Waiter {
  resolve(result: GcResult): void;
  reject(err: unknown): void;
}

/**
 * When to collect, as containerd 1.6's gc/scheduler decides it:
 *
 * - every committed metadata transaction is a mutation; one made while references have been removed
 *   since the last collection (the database is dirty) also counts as a deletion;
 * - collections are scheduled on an interval that keeps them under `pause_threshold` of wall time, and a
 *   scheduled collection runs only if something asked for it (a trigger, a deletion, or
 *   `mutation_threshold` mutations), else it is skipped and the next is an interval later;
 * - `deletion_threshold` deletions, a `ScheduleAndWait` (a `sync` delete), or, before anything was ever
 *   scheduled, a first deletion or `mutation_threshold` mutations, bring the collection forward to
 *   `schedule_delay` from now;
 * - the first collection comes `startup_delay` after start (none when 0).
 *
 * Two deliberate differences. A skipped tick costs no timer here: the next one is computed when
 * something is wanted, for the time containerd's would fire, so an idle daemon never wakes up. And
 * changes made while a collection runs count towards the next one; containerd drops events older than
 * the collection's end, which can leave a deletion made during a collection uncollected until the
 * next one is asked for.
 */
/** Sums over every collection a scheduler ran. */
export interface GcTotals {
  collections: number;
  failures: number;
  removedContent: number;
  removedSnapshots: number;
  expiredLeases: number;
  /** Time writers waited on the metadata database. */
  pauseMs: number;
  ms: number;
}

export class GcScheduler {
  readonly #collector: Collector;
  readonly #config: GcConfig;
  readonly #clock: Clock;
  readonly #log?: Logger;
  readonly #source?: MutationSource;
  #unsubscribe?: () => void;
  #stopped = false;

  /** When the next collection is due (containerd's nextCollection); undefined until one is scheduled. */
  #due: number | undefined;
  #timer: unknown;
  /** The `#due` the armed timer fires for. */
  #timerDue: number | undefined;
  #interval = INITIAL_INTERVAL_MS;
  #lastCollection: number | undefined;
  #pauseTotal = 0;
  #collections = 0;
  #counts: Counts = { triggered: false, deletions: 0, mutations: 0 };
  #running: Promise<void> | undefined;
  /** Waiting for the next collection to start (those of a running one are its own). */
  #waiters: Waiter[] = [];
  readonly #totals: GcTotals = {
    collections: 0,
    failures: 0,
    removedContent: 0,
    removedSnapshots: 0,
    expiredLeases: 0,
    pauseMs: 0,
    ms: 0,
  };

  constructor(collector: Collector, options: GcSchedulerOptions = {}) {
    this.#collector = collector;
    this.#config = { ...defaultGcConfig, ...options.config };
    this.#clock = options.clock ?? realClock;
    this.#log = options.log;
    this.#source = options.mutations;
  }

  get config(): GcConfig {
    return this.#config;
  }

  /** What every collection since the start removed, and the time it took (the daemon's metrics). */
  get totals(): Readonly<GcTotals> {
    return this.#totals;
  }

  /**
   * Listens for mutations and schedules the start-up collection. Deletions the source committed before
   * (the daemon's start-up drops its previous run's transfer leases) count as one.
   */
  start(): void {
    this.#unsubscribe = this.#source?.onMutation((dirty) => this.mutated(dirty));
    if (this.#config.startupDelayMs > 0) {
      const now = this.#clock.now();
      this.#due = now + this.#config.startupDelayMs;
      this.#arm(now);
    }
    if (this.#source?.dirty) this.mutated(true);
  }

  /** Stops scheduling; a collection under way finishes first. Waiters for a later one are refused. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    this.#clearTimer();
    const refused = this.#waiters.splice(0);
    for (const w of refused) {
      w.reject(unavailable("Cannot wait for a garbage collection: the collector is stopping"));
    }
    await this.#running;
  }

  /** A committed metadata transaction; `dirty`: references were removed since the last collection. */
  mutated(dirty: boolean): void {
    this.#event({ triggered: false, deletions: dirty ? 1 : 0, mutations: 1 });
  }

  /** Asks for a collection soon (after `schedule_delay`) and resolves once one has run after this call. */
  scheduleAndWait(signal?: AbortSignal): Promise<GcResult> {
    if (this.#stopped) {
      return Promise.reject(unavailable("Cannot schedule a garbage collection: the collector is stopped"));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const { promise, resolve, reject } = Promise.withResolvers<GcResult>();
    const waiter: Waiter = { resolve, reject };
    if (signal) {
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      promise.then(
        () => signal.removeEventListener("abort", onAbort),
        () => signal.removeEventListener("abort", onAbort),
      );
    }
    this.#waiters.push(waiter);
    this.#event({ triggered: true, deletions: 0, mutations: 0 });
    return promise;
  }

  #event(e: Counts): void {
    if (this.#stopped) return;
    const now = this.#clock.now();
    this.#skipPassedTicks(now);
    this.#add(e);
    // A running collection looks at what arrived meanwhile when it ends.
    if (this.#running) return;
    this.#bringForward(now);
    this.#arm(now);
  }

  #add(e: Counts): void {
    this.#counts.triggered ||= e.triggered;
    this.#counts.deletions += e.deletions;
    this.#counts.mutations += e.mutations;
  }

  /**
   * containerd's "immediate collection" check: a trigger, the deletion threshold, or, when nothing was
   * ever scheduled, a first deletion or the mutation threshold move the next collection to
   * `schedule_delay` from now (unless it is already due sooner).
   */
  #bringForward(now: number): void {
    const c = this.#config;
    const total = this.#counts;
    const wanted = total.triggered ||
      (c.deletionThreshold > 0 && total.deletions >= c.deletionThreshold) ||
      (this.#due === undefined &&
        ((c.deletionThreshold === 0 && total.deletions > 0) ||
          (c.mutationThreshold > 0 && total.mutations >= c.mutationThreshold)));
    if (!wanted) return;
    if (this.#due === undefined || this.#due > now + c.scheduleDelayMs) this.#due = now + c.scheduleDelayMs;
  }

  /** Whether the scheduled collection would run rather than be skipped (containerd's skip check). */
  #wanted(): boolean {
    const c = this.#config;
    const n = this.#counts;
    return n.triggered || this.#lastCollection === undefined || n.deletions > 0 ||
      (c.mutationThreshold > 0 && n.mutations >= c.mutationThreshold);
  }

  /**
   * Moves `#due` past ticks that came and went without a timer: nothing was wanted then, so
   * containerd skipped them and scheduled the next one an interval later.
   */
  #skipPassedTicks(now: number): void {
    if (this.#due === undefined || this.#timer !== undefined || this.#due >= now) return;
    this.#due += Math.ceil((now - this.#due) / this.#interval) * this.#interval;
  }

  #arm(now: number): void {
    const due = this.#due;
    if (this.#stopped || this.#running || due === undefined || !this.#wanted()) return this.#clearTimer();
    // Every write of a pull comes here while a deletion waits: keep the timer that is already right.
    if (this.#timer !== undefined && this.#timerDue === due) return;
    this.#clearTimer();
    this.#timerDue = due;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#run();
    }, Math.max(0, due - now));
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #run(): void {
    const waiters = this.#waiters.splice(0);
    const counted = this.#counts;
    const dueAt = this.#due;
    this.#counts = { triggered: false, deletions: 0, mutations: 0 };
    this.#running = this.#collector.collect().then(
      (result) => ({ result, err: undefined }),
      (err: unknown) => ({ result: undefined, err: err ?? new Error("Garbage collection failed") }),
    ).then(({ result, err }) => {
      this.#running = undefined;
      const now = this.#clock.now();
      const meanwhile = { ...this.#counts };
      if (result) this.#succeeded(result, waiters, now);
      else this.#failed(err, waiters, counted, dueAt, now);
      if (this.#stopped) return;
      // What arrived during the collection counts as if it arrived now.
      if (meanwhile.triggered || meanwhile.deletions > 0 || meanwhile.mutations > 0) {
        this.#bringForward(now);
      }
      this.#arm(now);
    });
  }

  #succeeded(result: GcResult, waiters: Waiter[], now: number): void {
    const t = this.#totals;
    t.collections++;
    t.removedContent += result.removedContent;
    t.removedSnapshots += result.removedSnapshots;
    t.expiredLeases += result.expiredLeases;
    t.pauseMs += result.pauseMs;
    t.ms += result.ms;
    this.#pauseTotal += result.pauseMs;
    this.#collections++;
    const p = this.#config.pauseThreshold;
    if (p > 0) {
      // Collections take at most p of the time: avg pause, then avg/p - avg of running.
      const avg = this.#pauseTotal / this.#collections;
      this.#interval = Math.max(1, avg / p - avg);
    }
    this.#lastCollection = now;
    this.#due = now + this.#interval;
    this.#log?.debug("garbage collected", {
      d: `${result.pauseMs}ms`,
      interval: `${Math.round(this.#interval)}ms`,
    });
    for (const w of waiters) w.resolve(result);
  }

  #failed(err: unknown, waiters: Waiter[], counted: Counts, dueAt: number | undefined, now: number): void {
    this.#totals.failures++;
    this.#log?.error("garbage collection failed", { error: (err as Error)?.message ?? String(err) });
    const gap = dueAt !== undefined && this.#lastCollection !== undefined
      ? dueAt - this.#lastCollection
      : this.#interval;
    this.#due = now + gap + FAILURE_BACKOFF_MS;
    this.#lastCollection = now;
    // What asked for this collection still wants one, at the rescheduled time.
    this.#add(counted);
    for (const w of waiters) w.reject(err);
  }
}
