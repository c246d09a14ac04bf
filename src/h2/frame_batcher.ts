/**
 * Collects the frames written within one tick and hands them to a sink as one write: the server's sink
 * is a node:net socket, the client's a Deno connection. One write per tick instead of one per frame
 * keeps a unary answer (HEADERS, DATA, trailers) in a single packet.
 */

import { frameHeaderSize, writeFrameHeader } from "./frames.ts";

/** Where a FrameBatcher's batches go. */
export interface ByteSink {
  /**
   * Takes one batch. A sink that writes asynchronously returns a promise: what is pushed meanwhile waits
   * and leaves as the next batch once it settles. A rejection drops the backlog and calls failed().
   */
  write(bytes: Uint8Array): void | Promise<void>;
  /** Whether writers should wait in drained(), given the bytes batched but not yet handed over. */
  full(backlog: number): boolean;
  /** An asynchronous write failed. */
  failed?(err: unknown): void;
  /** The asynchronous writes in flight have all ended (successfully or not). */
  settled?(): void;
}

export class FrameBatcher {
  readonly #sink: ByteSink;
  #out: Uint8Array[] = [];
  #bytes = 0;
  #queued = false;
  #writing = false;
  #stopped = false;
  #drainWaiters: (() => void)[] = [];

  constructor(sink: ByteSink) {
    this.#sink = sink;
  }

  /** No flush is queued and no asynchronous write is in flight. */
  get idle(): boolean {
    return !this.#queued && !this.#writing;
  }

  push(bytes: Uint8Array): void {
    if (this.#stopped) return;
    this.#out.push(bytes);
    this.#bytes += bytes.length;
    if (!this.#queued && !this.#writing) {
      this.#queued = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Queues one frame as its 9-byte header and the payload itself, which is copied only into the batch. */
  pushFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void {
    const length = payload?.length ?? 0;
    const header = new Uint8Array(frameHeaderSize);
    writeFrameHeader(header, 0, length, type, flags, streamId);
    this.push(header);
    if (payload && length > 0) this.push(payload);
  }

  /** Hands what is batched to the sink now; while an asynchronous write runs, it follows that one. */
  flush(): void {
    this.#queued = false;
    if (this.#writing || this.#out.length === 0) return;
    const pending = this.#sink.write(this.#take());
    if (pending) this.#follow(pending);
  }

  /** Resolves once the sink has room again (immediately if it has, or once stopped). */
  drained(): Promise<void> {
    if (this.#stopped || !this.#sink.full(this.#bytes)) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Drops what is pushed from now on and releases every waiter; what is batched still goes out. */
  stop(): void {
    this.#stopped = true;
    this.wake();
  }

  /** Releases the writers waiting in drained(). */
  wake(): void {
    for (const w of this.#drainWaiters.splice(0)) w();
  }

  /** Writes batch after batch until nothing is left, each once the previous write settled. */
  async #follow(pending: Promise<void>): Promise<void> {
    this.#writing = true;
    try {
      for (;;) {
        await pending;
        if (!this.#sink.full(this.#bytes)) this.wake();
        if (this.#out.length === 0) break;
        pending = this.#sink.write(this.#take()) ?? Promise.resolve();
      }
    } catch (err) {
      this.#out = [];
      this.#bytes = 0;
      this.#sink.failed?.(err);
    } finally {
      this.#writing = false;
    }
    this.#sink.settled?.();
  }

  #take(): Uint8Array {
    const out = this.#out.length === 1 ? this.#out[0]! : concat(this.#out, this.#bytes);
    this.#out = [];
    this.#bytes = 0;
    return out;
  }
}

export function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
