/**
 * Collects garbage once a long-lived process has gone quiet.
 *
 * V8 lets the heap grow between full collections, and Deno never tells V8 the process is idle, so a
 * daemon or shim that served a burst of calls keeps that burst's garbage resident: measured here, the
 * daemon went from 80 to 136 MiB PSS over 20 `ctr run -d`, and back to 80 MiB after one full GC. A
 * full collection of this heap takes ~10-20 ms, so it runs only after the heap (or the resident set)
 * has grown by `growthBytes` (`rssGrowthBytes`) since the last one and the process has then allocated
 * almost nothing for one tick. Each collection is followed by a malloc_trim (native_heap.ts): what the
 * collection freed outside V8's heap (ArrayBuffer stores, Deno's resources) otherwise stays resident in
 * glibc's arena.
 */

import { trimNativeHeap } from "./native_heap.ts";

/** The figures a tick reads, as Deno.memoryUsage() gives them. */
export interface MemoryFigures {
  readonly heapUsed: number;
  readonly rss: number;
  /** V8's running total of bytes allocated (node:v8's total_allocated_bytes), when known. */
  readonly allocated?: number;
}

export interface IdleCollectorOptions {
  /** Sampling period; a collection follows a burst after one to two periods. */
  readonly tickMs?: number;
  /**
   * Heap growth since the last collection that makes one worth its pause. 1 MiB: with 4 MiB the daemon's
   * resident memory grew ~14 MiB over 25 `ctr run -d`, with 1 MiB ~10 MiB; a pause after a quiet
   * tick costs a caller nothing.
   */
  readonly growthBytes?: number;
  /**
   * Resident growth since the last collection that makes one worth its pause, however little the heap
   * in use grew. A burst's young-generation collections can keep heapUsed within 1 MiB of the last full
   * one while the new space and glibc's arena stay grown: seen after 60 `ctr run -d` + exec + rm, the
   * daemon 8.5 MiB over its collected size, heapUsed 0.9 MiB over, until some later allocation.
   */
  readonly rssGrowthBytes?: number;
  /**
   * Growth of the heap in use within one tick below which the process counts as quiet, until V8's
   * running total of allocated bytes is known (node:v8 loads at the first collection). The heap in use
   * hides what a young-generation collection freed: a tick of a burst of `ctr run`s then looked quiet,
   * and the daemon paused ~55 ms for a full collection in the middle of the burst (twice over 40 runs).
   */
  readonly quietBytes?: number;
  /**
   * Bytes allocated within one tick, by V8's running total, below which the process counts as quiet.
   * The total moves by whole allocation buffers: an idle daemon shows ~0.3-0.7 MiB per 500 ms tick (its
   * timers), one `ctr run` ~10 MiB.
   */
  readonly quietAllocatedBytes?: number;
  /**
   * Called after each collection, once the process has gone quiet: the first follows start-up, each
   * later one a burst of work (e.g. to hand back pages only that work touched).
   */
  readonly afterEach?: (collections: number) => void;
  /** Injected for tests: the heap in use and the resident set, and a full collection. */
  readonly memory?: () => MemoryFigures;
  readonly gc?: () => void | Promise<void>;
  /** Injected for tests: gives freed native memory back, after each collection. */
  readonly trim?: () => void;
}

export class IdleCollector {
  readonly #memory: () => MemoryFigures;
  readonly #gc: () => void | Promise<void>;
  readonly #trim: () => void;
  readonly #growth: number;
  readonly #rssGrowth: number;
  readonly #quiet: number;
  readonly #quietAllocated: number;
  readonly #afterEach: ((collections: number) => void) | undefined;
  readonly #timer: ReturnType<typeof setInterval>;
  #baseline: MemoryFigures;
  #last: MemoryFigures;
  #collections = 0;

  constructor(options: IdleCollectorOptions = {}) {
    this.#memory = options.memory ?? memoryFigures;
    this.#gc = options.gc ?? exposedGc();
    this.#trim = options.trim ?? trimNativeHeap;
    this.#growth = options.growthBytes ?? 1 << 20;
    this.#rssGrowth = options.rssGrowthBytes ?? 4 << 20;
    this.#quiet = options.quietBytes ?? 256 << 10;
    this.#quietAllocated = options.quietAllocatedBytes ?? 1 << 20;
    this.#afterEach = options.afterEach;
    // Start-up's own garbage (module loading, plugin init) counts as growth: the first quiet tick after
    // boot collects it.
    this.#baseline = { heapUsed: 0, rss: 0 };
    this.#last = this.#memory();
    this.#timer = setInterval(() => void this.sample(), options.tickMs ?? 500);
    // Never the reason a process stays alive.
    Deno.unrefTimer(Number(this.#timer));
  }

  /** Full collections run so far. */
  get collections(): number {
    return this.#collections;
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** One tick: collects when the heap or the resident set grew enough and the last period was quiet. */
  async sample(): Promise<void> {
    const now = this.#memory();
    const counted = this.#last.allocated !== undefined && now.allocated !== undefined;
    const allocated = counted ? now.allocated! - this.#last.allocated! : heapGrowth(this.#last, now);
    this.#last = now;
    const grown = now.heapUsed - this.#baseline.heapUsed >= this.#growth ||
      now.rss - this.#baseline.rss >= this.#rssGrowth;
    if (this.#collecting || !grown || allocated > (counted ? this.#quietAllocated : this.#quiet)) return;
    this.#collecting = true;
    try {
      await this.#gc();
      this.#trim();
    } finally {
      this.#collecting = false;
    }
    this.#collections++;
    this.#baseline = this.#memory();
    this.#last = this.#baseline;
    this.#afterEach?.(this.#collections);
  }

  #collecting = false;
}

/**
 * Growth of the heap in use from one tick to the next: without a collection in between only allocation
 * makes it, so a heap that shrank (a collection ran: a young generation's worth was allocated) counts as
 * busy.
 */
function heapGrowth(before: MemoryFigures, now: MemoryFigures): number {
  const grew = now.heapUsed - before.heapUsed;
  return grew < 0 ? Infinity : grew;
}

/** node:v8, once the first collection has loaded it. */
let v8: typeof import("node:v8") | undefined;

function memoryFigures(): MemoryFigures {
  const { heapUsed, rss } = Deno.memoryUsage();
  // Deno's node:v8 has the field; @types/node does not declare it.
  const stats = v8?.getHeapStatistics() as { total_allocated_bytes?: number } | undefined;
  return { heapUsed, rss, allocated: stats?.total_allocated_bytes };
}

/**
 * V8's `gc()`, exposed at run time so no command line has to carry --expose-gc. node:v8 and node:vm load
 * at the first collection, once start-up is over: loading them with node-compat costs a daemon or shim
 * ~5-10 ms of its start.
 */
function exposedGc(): () => Promise<void> {
  let gc: (() => void) | undefined;
  return async () => {
    if (!gc) {
      const [{ default: v8Module }, { default: vm }] = await Promise.all([
        import("node:v8"),
        import("node:vm"),
      ]);
      v8Module.setFlagsFromString("--expose-gc");
      gc = vm.runInNewContext("gc") as () => void;
      v8 = v8Module;
    }
    gc();
  };
}
