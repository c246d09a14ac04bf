/** Runs at most `limit` tasks at once, in the order they asked (containerd's max_concurrent_downloads). */
export class Limiter {
  readonly #limit: number;
  #running = 0;
  readonly #queue: (() => void)[] = [];

  constructor(limit: number) {
    this.#limit = Math.max(1, Math.floor(limit));
  }

  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.#running >= this.#limit) {
      await new Promise<void>((resolve, reject) => {
        const go = () => {
          signal?.removeEventListener("abort", stop);
          resolve();
        };
        const stop = () => {
          const i = this.#queue.indexOf(go);
          if (i >= 0) this.#queue.splice(i, 1);
          reject(signal!.reason);
        };
        signal?.addEventListener("abort", stop, { once: true });
        this.#queue.push(go);
      });
    } else {
      this.#running++;
    }
    try {
      signal?.throwIfAborted();
      return await task();
    } finally {
      const next = this.#queue.shift();
      if (next) next(); // the slot passes straight to the next task
      else this.#running--;
    }
  }
}
