/**
 * Writes one connection's frames. Everything queued within one tick leaves in one write, so a unary answer
 * (HEADERS, DATA, trailers) is one packet. While the sink is busy (an asynchronous write in flight, or a
 * socket that asked to be drained) frames wait here, and here the connection's outbound bounds hold:
 * bodies stop at the high-water mark (`full`), and a queue past maxWriteBacklog bytes or
 * maxQueuedControlFrames control frames means the peer does not read, so the writer reports an overflow
 * and takes nothing more.
 */

import { frameHeaderSize, FrameType, writeFrameHeader } from "./frames.ts";
import { closeTimeoutMs, maxQueuedControlFrames, maxWriteBacklog, writeHighWater } from "./limits.ts";

/** Where a connection's bytes go: a node:net socket (the server) or a Deno connection (the client). */
export interface ByteSink {
  /**
   * Takes one batch. A returned promise means the sink is busy until it settles: what is queued meanwhile
   * leaves as the next batch. A rejection means the connection is gone.
   */
  write(bytes: Uint8Array): void | Promise<void>;
  /** Ends the byte stream after the batches handed over; `now`: without waiting for them. */
  close(now: boolean): void;
}

export interface FrameWriterEvents {
  /** The queue went past a limit (`reason` says which): the writer has stopped and closed the sink. */
  overflow(reason: string): void;
  /** The backlog fell below the high-water mark after `full` said it was reached. */
  drain(): void;
  /** A write failed: the writer has stopped. */
  failed(err: unknown): void;
}

export class FrameWriter {
  readonly #sink: ByteSink;
  readonly #events: FrameWriterEvents;
  #out: Uint8Array[] = [];
  #bytes = 0;
  /** Control frames among #out (all but DATA, HEADERS and CONTINUATION). */
  #control = 0;
  /** Size of the batch an asynchronous write is taking. */
  #inFlight = 0;
  #flushQueued = false;
  #writing = false;
  #stopped = false;
  #closing = false;
  #sinkState: "open" | "ending" | "closed" = "open";
  #wantDrain = false;
  #disposed = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(sink: ByteSink, events: FrameWriterEvents) {
    this.#sink = sink;
    this.#events = events;
  }

  /** Bytes queued and in flight. */
  get backlog(): number {
    return this.#bytes + this.#inFlight;
  }

  /** Bodies should wait: the backlog is at the high-water mark. `drain` follows once it is not. */
  get full(): boolean {
    if (this.#stopped) return false;
    if (this.backlog < writeHighWater) return false;
    this.#wantDrain = true;
    return true;
  }

  /** Queues raw bytes (the client's connection preface). */
  push(bytes: Uint8Array): void {
    if (this.#stopped) return;
    this.#add(bytes);
  }

  /** Queues one frame as its 9-byte header and the payload, which is copied only into the batch. */
  pushFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void {
    if (this.#stopped) return;
    const length = payload?.length ?? 0;
    const header = new Uint8Array(frameHeaderSize);
    writeFrameHeader(header, 0, length, type, flags, streamId);
    this.#add(header);
    if (payload && length > 0) this.#add(payload);
    if (type !== FrameType.data && type !== FrameType.headers && type !== FrameType.continuation) {
      this.#control++;
    }
    if (this.#control > maxQueuedControlFrames) {
      this.#overflow(`${this.#control} control frames are queued for a peer that does not read`);
    } else if (this.#bytes > maxWriteBacklog) {
      this.#overflow(`${this.#bytes} bytes are queued for a peer that does not read`);
    }
  }

  /** Hands what is queued to the sink now; while an asynchronous write runs, it follows that one. */
  flush(): void {
    this.#flushQueued = false;
    if (this.#writing || this.#out.length === 0 || this.#sinkState !== "open") return;
    let pending: void | Promise<void>;
    try {
      pending = this.#sink.write(this.#take());
    } catch (err) {
      return this.#fail(err);
    }
    if (pending) return void this.#follow(pending);
    this.#inFlight = 0;
    this.#settled();
  }

  /**
   * Graceful close: takes nothing more, writes what is queued, then closes the sink; cuts it if that takes
   * longer than closeTimeoutMs (a peer that neither reads nor closes would hold the socket forever).
   */
  close(): void {
    if (this.#closing || this.#disposed || this.#sinkState === "closed") return;
    this.#closing = true;
    this.#stopped = true;
    this.#closeTimer = setTimeout(() => this.destroy(), closeTimeoutMs);
    // Never the reason a process stays alive.
    Deno.unrefTimer(Number(this.#closeTimer));
    this.flush();
    if (!this.#writing) this.#endSink();
  }

  /** Drops what is queued and closes the sink now. */
  destroy(): void {
    this.#stopped = true;
    this.#out = [];
    this.#bytes = 0;
    this.#control = 0;
    this.dispose();
    if (this.#sinkState === "closed") return;
    this.#sinkState = "closed";
    this.#sink.close(true);
  }

  /** The transport has closed: nothing more to do, not even the close timer. */
  dispose(): void {
    this.#disposed = true;
    this.#stopped = true;
    // Only a timer that exists: clearTimeout alone loads node:timers in Deno (~5 ms of a CLI's exit).
    if (this.#closeTimer !== undefined) clearTimeout(this.#closeTimer);
    this.#closeTimer = undefined;
  }

  #add(bytes: Uint8Array): void {
    this.#out.push(bytes);
    this.#bytes += bytes.length;
    if (!this.#flushQueued && !this.#writing) {
      this.#flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Writes batch after batch until nothing is left, each once the previous write settled. */
  async #follow(pending: Promise<void>): Promise<void> {
    this.#writing = true;
    try {
      for (;;) {
        await pending;
        this.#inFlight = 0;
        this.#maybeDrain();
        if (this.#out.length === 0 || this.#sinkState !== "open") break;
        pending = this.#sink.write(this.#take()) ?? Promise.resolve();
      }
    } catch (err) {
      this.#writing = false;
      this.#inFlight = 0;
      return this.#fail(err);
    }
    this.#writing = false;
    this.#settled();
  }

  #settled(): void {
    this.#maybeDrain();
    if (this.#closing) this.#endSink();
  }

  #maybeDrain(): void {
    if (this.#wantDrain && this.backlog < writeHighWater) {
      this.#wantDrain = false;
      this.#events.drain();
    }
  }

  #endSink(): void {
    if (this.#sinkState !== "open") return;
    this.#sinkState = "ending";
    this.#sink.close(false);
  }

  #take(): Uint8Array {
    const out = this.#out.length === 1 ? this.#out[0]! : concat(this.#out, this.#bytes);
    this.#inFlight = out.length;
    this.#out = [];
    this.#bytes = 0;
    this.#control = 0;
    return out;
  }

  #overflow(reason: string): void {
    this.destroy();
    this.#events.overflow(reason);
  }

  #fail(err: unknown): void {
    this.#stopped = true;
    this.#out = [];
    this.#bytes = 0;
    this.#events.failed(err);
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
