/**
 * Collects garbage once a long-lived process has gone quiet.
 *
 * V8 lets the heap grow between full collections, and Deno never tells V8 the process is idle, so a
 * daemon or shim that served a burst of calls keeps that burst's garbage resident: measured here, the
 * daemon went from 80 to 136 MiB PSS over 20 `ctr run -d`, and back to 80 MiB after one full GC. A
 * full collection of this heap takes ~10-20 ms, so it runs only after the heap has grown by
 * `growthBytes` since the last one and the process has then allocated almost nothing for one tick.
 */

export interface IdleCollectorOptions {
  /** Sampling period; a collection follows a burst after one to two periods. */
  readonly tickMs?: number;
  /**
   * Heap growth since the last collection that makes one worth its pause. 1 MiB: with 4 MiB the daemon's
   * resident memory grew ~14 MiB over 25 `ctr run -d`, with 1 MiB ~10 MiB; a pause after a quiet
   * tick costs a caller nothing.
   */
  readonly growthBytes?: number;
  /** Allocation within one tick below which the process counts as quiet. */
  readonly quietBytes?: number;
  /** Called once, after the first collection: start-up is over and the process has gone quiet. */
  readonly afterFirst?: () => void;
  /** Injected for tests: the heap in use, and a full collection. */
  readonly heapUsed?: () => number;
  readonly gc?: () => void | Promise<void>;
}

export class IdleCollector {
  readonly #heapUsed: () => number;
  readonly #gc: () => void | Promise<void>;
  readonly #growth: number;
  readonly #quiet: number;
  readonly #afterFirst: (() => void) | undefined;
  readonly #timer: ReturnType<typeof setInterval>;
  #baseline: number;
  #last: number;
  #collections = 0;

  constructor(options: IdleCollectorOptions = {}) {
    this.#heapUsed = options.heapUsed ?? (() => Deno.memoryUsage().heapUsed);
    this.#gc = options.gc ?? exposedGc();
    this.#growth = options.growthBytes ?? 1 << 20;
    this.#quiet = options.quietBytes ?? 256 << 10;
    this.#afterFirst = options.afterFirst;
    // Start-up's own garbage (module loading, plugin init) counts as growth: the first quiet tick after
    // boot collects it.
    this.#baseline = 0;
    this.#last = this.#heapUsed();
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

  /** One tick: collects when the heap grew enough and the last period was quiet. */
  async sample(): Promise<void> {
    const used = this.#heapUsed();
    const allocated = used - this.#last;
    this.#last = used;
    if (this.#collecting || used - this.#baseline < this.#growth || allocated > this.#quiet) return;
    this.#collecting = true;
    try {
      await this.#gc();
    } finally {
      this.#collecting = false;
    }
    this.#collections++;
    this.#baseline = this.#last = this.#heapUsed();
    if (this.#collections === 1) this.#afterFirst?.();
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
