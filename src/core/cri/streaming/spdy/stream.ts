/**
 * One SPDY stream as the server side holds it: the peer's bytes as a ReadableStream that is only read
 * as fast as its consumer pulls (a full buffer pauses the whole connection's reading, which is what the
 * Go peer does too), this side's bytes as a WritableStream whose writes resolve once on the wire, and
 * half-close in each direction.
 */

import type { HeaderMap } from "./header_block.ts";
import { RstStatus } from "./frames.ts";

/** What a stream needs from its connection. */
export interface StreamHost {
  /** Sends data (split into frames as flow control allows); resolves once written. */
  sendData(stream: SpdyStream, data: Uint8Array, fin: boolean): Promise<void>;
  sendReset(stream: SpdyStream, status: number): void;
  /** `n` bytes of the stream's received data were consumed (read or dropped): windows may reopen. */
  consumed(stream: SpdyStream, n: number): void;
  /** Both directions are over: the stream no longer counts against the limit. */
  streamClosed(stream: SpdyStream): void;
}

/** A stream ended by RST_STREAM or by its connection's end. */
export class SpdyStreamError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = "SpdyStreamError";
  }
}

const statusNames: Record<number, string> = Object.fromEntries(
  Object.entries(RstStatus).map(([name, code]) => [code, name]),
);

export function rstStatusName(status: number): string {
  return statusNames[status] ?? `status ${status}`;
}

export interface SpdyStreamInit {
  readonly id: number;
  readonly headers: HeaderMap;
  /** Received bytes held for the consumer before `receive()` asks the connection to pause. */
  readonly bufferBytes: number;
  /** This side's window for sending: the peer's initial window. */
  readonly sendWindow: number;
  /** The peer half-closed with its SYN_STREAM (FIN). */
  readonly remoteEnded: boolean;
  /** The peer will not receive (UNIDIRECTIONAL): this side starts half-closed. */
  readonly localEnded: boolean;
  /** Resolves when the SYN_REPLY is written: this side's frames on the stream go after it. */
  readonly replied: Promise<void>;
}

export class SpdyStream {
  readonly id: number;
  readonly headers: HeaderMap;
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** The send window; negative after the peer shrank its initial window. */
  sendWindow: number;
  readonly #host: StreamHost;
  readonly #bufferBytes: number;
  readonly #chunks: Uint8Array[] = [];
  #buffered = 0;
  #remoteEnded: boolean;
  #localEnded: boolean;
  #finQueued = false;
  #discarding = false;
  #failure: SpdyStreamError | undefined;
  #dataWaiter: (() => void) | undefined;
  #spaceWaiters: (() => void)[] = [];
  /** This side's frames, in order: the SYN_REPLY first, then writes and the FIN. */
  #sendChain: Promise<void>;
  #removed = false;
  readonly #ended = new AbortController();

  constructor(host: StreamHost, init: SpdyStreamInit) {
    this.#host = host;
    this.id = init.id;
    this.headers = init.headers;
    this.#bufferBytes = init.bufferBytes;
    this.sendWindow = init.sendWindow;
    this.#remoteEnded = init.remoteEnded;
    this.#localEnded = this.#finQueued = init.localEnded;
    this.#sendChain = init.replied;
    this.readable = new ReadableStream<Uint8Array>({
      pull: (controller) => this.#pull(controller),
      cancel: () => this.#discard(),
    }, { highWaterMark: 0 });
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: () => this.end(),
      abort: () => this.reset(RstStatus.cancel),
    });
  }

  /** The first value of a header (names are lower case on the wire). */
  header(name: string): string | undefined {
    return this.headers.get(name.toLowerCase())?.[0];
  }

  get remoteEnded(): boolean {
    return this.#remoteEnded;
  }

  get localEnded(): boolean {
    return this.#localEnded;
  }

  /** Why the stream failed: reset by either side, or its connection ended. */
  get failure(): SpdyStreamError | undefined {
    return this.#failure;
  }

  /** Aborted when the stream fails (its reason is the failure); never once it ended cleanly. */
  get signal(): AbortSignal {
    return this.#ended.signal;
  }

  /** Sends `data`; resolves once it is on the wire. Callable whether or not `writable` is locked. */
  write(data: Uint8Array): Promise<void> {
    if (this.#finQueued || this.#failure) return Promise.reject(this.#closedForWriting());
    if (data.length === 0) return this.#sendChain;
    return this.#chain(() => this.#host.sendData(this, data, false));
  }

  /** Half-closes this side (FIN) after what was written; idempotent. */
  end(): Promise<void> {
    if (this.#failure) return Promise.resolve();
    if (this.#finQueued) return this.#sendChain;
    this.#finQueued = true;
    return this.#chain(async () => {
      await this.#host.sendData(this, new Uint8Array(0), true);
      this.#localEnded = true;
      this.#maybeRemoved();
    });
  }

  /** Ends both directions now (RST_STREAM); pending writes fail. */
  reset(status: number = RstStatus.cancel): void {
    if (this.#failure) return;
    if (this.#localEnded && this.#remoteEnded) return;
    this.#fail(
      new SpdyStreamError(`Stream ${this.id} was reset by this side (${rstStatusName(status)})`, status),
    );
    this.#host.sendReset(this, status);
  }

  // --- called by the connection -------------------------------------------------------------------

  /**
   * Data from the peer. Returns a promise when the buffer is over its size: the connection stops
   * reading until the consumer catches up, the stream is dropped, or the connection ends.
   */
  receive(data: Uint8Array): Promise<void> | undefined {
    if (this.#discarding || this.#failure) {
      this.#host.consumed(this, data.length);
      return undefined;
    }
    if (data.length === 0) return undefined;
    this.#chunks.push(data);
    this.#buffered += data.length;
    this.#wakeReader();
    if (this.#buffered <= this.#bufferBytes) return undefined;
    return new Promise((resolve) => this.#spaceWaiters.push(resolve));
  }

  /** The peer half-closed (FIN on data, HEADERS or SYN_STREAM). */
  remoteEnd(): void {
    if (this.#remoteEnded) return;
    this.#remoteEnded = true;
    this.#wakeReader();
    this.#maybeRemoved();
  }

  /** The peer sent RST_STREAM. */
  resetByPeer(status: number): void {
    this.#fail(
      new SpdyStreamError(`Stream ${this.id} was reset by the peer (${rstStatusName(status)})`, status),
    );
  }

  /** The connection ended: both directions fail unless already over. */
  connectionEnded(reason: string): void {
    if (this.#localEnded && this.#remoteEnded) return;
    this.#fail(new SpdyStreamError(`Stream ${this.id} ended with its connection: ${reason}`));
  }

  // --- internals ----------------------------------------------------------------------------------

  #chain(send: () => Promise<void>): Promise<void> {
    const next = this.#sendChain.then(() => {
      if (this.#failure) throw this.#closedForWriting();
      return send();
    });
    // A failed write fails the caller; later writes still run (they fail too, once the stream failed).
    this.#sendChain = next.catch(() => {});
    return next;
  }

  #closedForWriting(): SpdyStreamError {
    return this.#failure ?? new SpdyStreamError(`Cannot write to stream ${this.id}: this side has ended it`);
  }

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    for (;;) {
      const chunk = this.#chunks.shift();
      if (chunk) {
        this.#buffered -= chunk.length;
        controller.enqueue(chunk);
        this.#host.consumed(this, chunk.length);
        this.#wakeWriters();
        return;
      }
      // All the peer sent arrived before any failure: the reader gets it whole.
      if (this.#remoteEnded) return controller.close();
      if (this.#failure) return controller.error(this.#failure);
      await new Promise<void>((resolve) => this.#dataWaiter = resolve);
    }
  }

  #discard(): void {
    this.#discarding = true;
    const dropped = this.#buffered;
    this.#chunks.length = 0;
    this.#buffered = 0;
    if (dropped > 0) this.#host.consumed(this, dropped);
    this.#wakeWriters();
  }

  #wakeReader(): void {
    const w = this.#dataWaiter;
    this.#dataWaiter = undefined;
    w?.();
  }

  #wakeWriters(): void {
    if (this.#buffered > this.#bufferBytes && !this.#discarding) return;
    const waiters = this.#spaceWaiters;
    this.#spaceWaiters = [];
    for (const w of waiters) w();
  }

  #fail(err: SpdyStreamError): void {
    if (this.#failure) return;
    this.#failure = err;
    if (!this.#remoteEnded) {
      // An incomplete input is dropped; the connection reads on.
      this.#chunks.length = 0;
      this.#buffered = 0;
    }
    this.#wakeReader();
    this.#wakeWriters();
    this.#ended.abort(err);
    this.#removed = true;
    this.#host.streamClosed(this);
  }

  #maybeRemoved(): void {
    if (this.#removed || !this.#localEnded || !this.#remoteEnded) return;
    this.#removed = true;
    this.#host.streamClosed(this);
  }
}
