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
  /** Allocation within one tick below which the process counts as quiet. */
  readonly quietBytes?: number;
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
  readonly #afterEach: ((collections: number) => void) | undefined;
  readonly #timer: ReturnType<typeof setInterval>;
  #baseline: MemoryFigures;
  #last: number;
  #collections = 0;

  constructor(options: IdleCollectorOptions = {}) {
    this.#memory = options.memory ?? (() => Deno.memoryUsage());
    this.#gc = options.gc ?? exposedGc();
    this.#trim = options.trim ?? trimNativeHeap;
    this.#growth = options.growthBytes ?? 1 << 20;
    this.#rssGrowth = options.rssGrowthBytes ?? 4 << 20;
    this.#quiet = options.quietBytes ?? 256 << 10;
    this.#afterEach = options.afterEach;
    // Start-up's own garbage (module loading, plugin init) counts as growth: the first quiet tick after
    // boot collects it.
    this.#baseline = { heapUsed: 0, rss: 0 };
    this.#last = this.#memory().heapUsed;
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
    const allocated = now.heapUsed - this.#last;
    this.#last = now.heapUsed;
    const grown = now.heapUsed - this.#baseline.heapUsed >= this.#growth ||
      now.rss - this.#baseline.rss >= this.#rssGrowth;
    if (this.#collecting || !grown || allocated > this.#quiet) return;
    this.#collecting = true;
    try {
      await this.#gc();
      this.#trim();
    } finally {
      this.#collecting = false;
    }
    this.#collections++;
    this.#baseline = this.#memory();
    this.#last = this.#baseline.heapUsed;
    this.#afterEach?.(this.#collections);
  }

  #collecting = false;
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
      const [{ default: v8 }, { default: vm }] = await Promise.all([import("node:v8"), import("node:vm")]);
      v8.setFlagsFromString("--expose-gc");
      gc = vm.runInNewContext("gc") as () => void;
    }
    gc();
  };
}
