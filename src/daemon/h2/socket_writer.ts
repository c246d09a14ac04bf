import type * as net from "node:net";

/** Collects the frames written within one tick and hands them to the socket as one write. */
export class SocketWriter {
  readonly #socket: net.Socket;
  #out: Uint8Array[] = [];
  #bytes = 0;
  #queued = false;
  #stopped = false;
  #drainWaiters: (() => void)[] = [];

  constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on("drain", () => this.#wake());
  }

  push(bytes: Uint8Array): void {
    if (this.#stopped) return;
    this.#out.push(bytes);
    this.#bytes += bytes.length;
    if (!this.#queued) {
      this.#queued = true;
      queueMicrotask(() => this.flush());
    }
  }

  flush(): void {
    this.#queued = false;
    if (this.#out.length === 0) return;
    const out = this.#out.length === 1 ? this.#out[0]! : concat(this.#out, this.#bytes);
    this.#out = [];
    this.#bytes = 0;
    if (!this.#socket.destroyed && this.#socket.writable) this.#socket.write(out);
  }

  /** Resolves once the socket has room again (immediately if it has, or once stopped). */
  drained(): Promise<void> {
    if (this.#stopped || !this.#socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Drops what is queued from now on and releases every waiter. */
  stop(): void {
    this.#stopped = true;
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#drainWaiters.splice(0)) w();
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
