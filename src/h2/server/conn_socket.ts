/**
 * A Deno.Conn with the part of node:net's Socket interface a server connection uses: `data`, `end`,
 * `close` and `drain` events, pause/resume, write with backpressure, end and destroy.
 *
 * The daemon serves its API over these instead of node:net: importing node:net loads Deno's node
 * compatibility layer, ~20 ms of every daemon start (a bare listener is up 15 ms after spawn, one on
 * node:net 37 ms, measured here) and ~5 MiB of heap for as long as the process lives.
 */

/** What a server connection needs of its transport: node:net's Socket has it, and so does ConnSocket. */
export interface ServerSocket {
  readonly destroyed: boolean;
  readonly writable: boolean;
  on(event: "data", listener: (chunk: Uint8Array) => void): unknown;
  on(event: "end" | "close" | "drain", listener: () => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
  once(event: "close" | "drain", listener: () => void): unknown;
  off(event: "data", listener: (chunk: Uint8Array) => void): unknown;
  off(event: "close" | "drain", listener: () => void): unknown;
  pause(): unknown;
  resume(): unknown;
  /** Queues `b` (kept, not copied); false once the queue is past its high-water mark: wait for `drain`. */
  write(b: Uint8Array): boolean;
  /** Closes once what was written has gone out. */
  end(): unknown;
  /** Closes now, dropping what was not written. */
  destroy(): unknown;
}

/** Settles once `socket` has taken what was queued (`drain`) or has closed. */
export function whenDrained(socket: ServerSocket): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      socket.off("drain", done);
      socket.off("close", done);
      resolve();
    };
    socket.on("drain", done);
    socket.on("close", done);
  });
}

type Listener = (arg?: never) => void;

/**
 * Each socket keeps one read buffer, held by its pending read for as long as the connection is idle: it
 * starts small (500 idle connections with 64 KiB each held a daemon 32 MiB up), doubles after a read
 * that filled it and halves after one that used less than a quarter of it.
 */
const MIN_READ_BYTES = 4 << 10;
const MAX_READ_BYTES = 64 << 10;
/** Queued bytes past which write() asks the caller to wait for `drain` (node's default is 16 KiB). */
const HIGH_WATER = 64 << 10;
/** Queued writes are joined into one write up to this size. */
const JOIN_BYTES = 256 << 10;

/** Errors that only say the peer has gone: reported as a close, never as an `error` event. */
function isPeerGone(err: unknown): boolean {
  return err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted ||
    err instanceof Deno.errors.NotConnected;
}

export class ConnSocket implements ServerSocket {
  readonly #conn: Deno.Conn;
  readonly #listeners = new Map<string, Listener[]>();
  #paused = false;
  /** A chunk read while paused, handed out on resume. */
  #held: Uint8Array | undefined;
  #wake: (() => void) | undefined;
  readonly #queue: Uint8Array[] = [];
  #queued = 0;
  #writing = false;
  #needDrain = false;
  #ending = false;
  #closed = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    // Listeners are attached in the same turn as the socket is made; reading starts after it.
    queueMicrotask(() => void this.#readLoop());
  }

  get destroyed(): boolean {
    return this.#closed;
  }

  get writable(): boolean {
    return !this.#closed && !this.#ending;
  }

  on(event: "data", listener: (chunk: Uint8Array) => void): this;
  on(event: "end" | "close" | "drain", listener: () => void): this;
  on(event: "error", listener: (err: Error) => void): this;
  on(event: string, listener: (arg: never) => void): this {
    const list = this.#listeners.get(event);
    if (list) list.push(listener as Listener);
    else this.#listeners.set(event, [listener as Listener]);
    return this;
  }

  once(event: "close" | "drain", listener: () => void): this {
    const wrapped = () => {
      this.off(event, wrapped);
      listener();
    };
    return this.on(event, wrapped);
  }

  off(event: "data", listener: (chunk: Uint8Array) => void): this;
  off(event: "close" | "drain", listener: () => void): this;
  off(event: string, listener: (arg: never) => void): this {
    const list = this.#listeners.get(event);
    const i = list?.indexOf(listener as Listener) ?? -1;
    if (i >= 0) list!.splice(i, 1);
    return this;
  }

  #emit(event: string, arg?: unknown): void {
    const list = this.#listeners.get(event);
    if (!list) return;
    for (const l of [...list]) (l as (a: unknown) => void)(arg);
  }

  pause(): this {
    this.#paused = true;
    return this;
  }

  resume(): this {
    if (!this.#paused) return this;
    this.#paused = false;
    const held = this.#held;
    this.#held = undefined;
    if (held && !this.#closed) this.#emit("data", held);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
    return this;
  }

  async #readLoop(): Promise<void> {
    let buf = new Uint8Array(MIN_READ_BYTES);
    while (!this.#closed) {
      while ((this.#paused || this.#held) && !this.#closed) await new Promise<void>((r) => this.#wake = r);
      if (this.#closed) return;
      let n: number | null;
      try {
        n = await this.#conn.read(buf);
      } catch (err) {
        this.#fail(err);
        return;
      }
      if (this.#closed) return;
      if (n === null) {
        this.#emit("end");
        // As node's server sockets (allowHalfOpen false): the peer's end ends ours.
        this.end();
        return;
      }
      const chunk = buf.slice(0, n);
      if (n === buf.length && buf.length < MAX_READ_BYTES) buf = new Uint8Array(buf.length * 2);
      else if (n < buf.length / 4 && buf.length > MIN_READ_BYTES) buf = new Uint8Array(buf.length / 2);
      if (this.#paused) this.#held = chunk;
      else this.#emit("data", chunk);
    }
  }

  write(b: Uint8Array): boolean {
    if (!this.writable) return false;
    if (b.length > 0) {
      this.#queue.push(b);
      this.#queued += b.length;
      if (!this.#writing) void this.#writeLoop();
    }
    const ok = this.#queued < HIGH_WATER;
    if (!ok) this.#needDrain = true;
    return ok;
  }

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        let out = this.#queue.shift()!;
        if (this.#queue.length > 0 && out.length < JOIN_BYTES) out = this.#join(out);
        let off = 0;
        while (off < out.length) off += await this.#conn.write(off === 0 ? out : out.subarray(off));
        this.#queued -= out.length;
      }
    } catch (err) {
      this.#fail(err);
      return;
    } finally {
      this.#writing = false;
    }
    if (this.#closed) return;
    if (this.#ending) return this.#close();
    if (this.#needDrain) {
      this.#needDrain = false;
      this.#emit("drain");
    }
  }

  /** `first` and the queued writes after it, up to JOIN_BYTES, as one buffer. */
  #join(first: Uint8Array): Uint8Array {
    let size = first.length;
    let count = 0;
    while (count < this.#queue.length && size + this.#queue[count]!.length <= JOIN_BYTES) {
      size += this.#queue[count]!.length;
      count++;
    }
    if (count === 0) return first;
    const out = new Uint8Array(size);
    out.set(first);
    let at = first.length;
    for (const b of this.#queue.splice(0, count)) {
      out.set(b, at);
      at += b.length;
    }
    return out;
  }

  end(): this {
    if (this.#closed || this.#ending) return this;
    this.#ending = true;
    if (!this.#writing) this.#close();
    return this;
  }

  destroy(): this {
    this.#close();
    return this;
  }

  #fail(err: unknown): void {
    if (this.#closed) return;
    if (!isPeerGone(err)) this.#emit("error", err);
    this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#queued = 0;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    this.#held = undefined;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
    this.#emit("close");
  }
}
