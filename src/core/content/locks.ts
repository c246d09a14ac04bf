import { formatRfc3339Nano, now, type UnixNanos } from "../../base/clock.ts";
import { unavailable } from "../../base/errors.ts";

interface Held<T> {
  readonly holder: T;
  readonly since: UnixNanos;
  readonly released: Promise<void>;
  readonly release: () => void;
}

/**
 * One writer per ingest ref. A Write stream that ends releases its lock only once its writer has
 * flushed and recorded its progress, a few milliseconds after the client has moved on, and a client
 * resumes by opening the same ref at once: so a taker waits a while for a held lock, as containerd's
 * local store retries for about a second, before it answers unavailable.
 */
export class RefLocks<T> {
  readonly #held = new Map<string, Held<T>>();

  /** Whoever holds `key`, if anyone. */
  holder(key: string): T | undefined {
    return this.#held.get(key)?.holder;
  }

  /**
   * Takes `key` for `holder`, waiting up to `waitMs` for the current holder to release it; then fails
   * with unavailable, naming `ref` and how long it has been held.
   */
  async acquire(key: string, holder: T, options: { ref: string; waitMs: number }): Promise<void> {
    const deadline = performance.now() + options.waitMs;
    for (;;) {
      const held = this.#held.get(key);
      if (held === undefined) break;
      const left = deadline - performance.now();
      if (left <= 0) {
        const secs = Number(now() - held.since) / 1e9;
        throw unavailable(
          `Ref ${options.ref} locked for ${secs.toFixed(1)}s (since ${formatRfc3339Nano(held.since)})`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([held.released, new Promise((r) => timer = setTimeout(r, left))]);
      clearTimeout(timer);
    }
    let release!: () => void;
    const released = new Promise<void>((r) => release = r);
    this.#held.set(key, { holder, since: now(), released, release });
  }

  /** Releases `key` if `holder` holds it, waking whoever waits for it. */
  release(key: string, holder: T): void {
    const held = this.#held.get(key);
    if (held?.holder !== holder) return;
    this.#held.delete(key);
    held.release();
  }
}

/**
 * A read-write gate between the writes to a remote backend (an ingest opening, a commit) and the sweep
 * that deletes what no namespace holds there (containerd's metadata store holds a RWMutex the same
 * way): a blob committed remotely is recorded before any sweep can look at it, and a sweep's check and
 * delete run with no write between them.
 */
export class SweepGate {
  #readers = 0;
  #drained: (() => void) | undefined;
  #sweep: Promise<void> | undefined;

  /** Runs `fn` as one write; writes run together, never during a sweep's step. */
  async shared<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#sweep !== undefined) await this.#sweep;
    this.#readers++;
    try {
      return await fn();
    } finally {
      if (--this.#readers === 0) this.#drained?.();
    }
  }

  /** Runs `fn` alone: once the writes under way are done, and before any other starts. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#sweep !== undefined) await this.#sweep;
    let end!: () => void;
    this.#sweep = new Promise<void>((r) => end = r);
    try {
      if (this.#readers > 0) await new Promise<void>((r) => this.#drained = r);
      this.#drained = undefined;
      return await fn();
    } finally {
      this.#sweep = undefined;
      end();
    }
  }
}
