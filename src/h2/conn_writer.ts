/** Collects the frames written within one tick and hands them to a Deno connection as one write. */

/** Above this many unwritten bytes, writers of request bodies wait (drained()). */
const highWater = 256 << 10;

export class ConnWriter {
  readonly #conn: Deno.Conn;
  readonly #onClose: () => void;
  #out: Uint8Array[] = [];
  #bytes = 0;
  #queued = false;
  #writing = false;
  #closing = false;
  #closed = false;
  #drainWaiters: (() => void)[] = [];

  /** `onClose` runs once, when close() is first called or a write fails. */
  constructor(conn: Deno.Conn, onClose: () => void) {
    this.#conn = conn;
    this.#onClose = onClose;
  }

  push(bytes: Uint8Array): void {
    if (this.#closing) return;
    this.#out.push(bytes);
    this.#bytes += bytes.length;
    if (!this.#queued && !this.#writing) {
      this.#queued = true;
      queueMicrotask(() => this.#flush());
    }
  }

  /** Resolves once the backlog is under the high-water mark (immediately if it is, or once closed). */
  drained(): Promise<void> {
    if (this.#closing || this.#bytes < highWater) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Closes the connection after what is queued has been written (or the write failed). */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#wake();
    this.#onClose();
    if (!this.#writing && !this.#queued) this.#closeConn();
  }

  async #flush(): Promise<void> {
    this.#queued = false;
    this.#writing = true;
    try {
      while (this.#out.length > 0) {
        const out = this.#out.length === 1 ? this.#out[0]! : concat(this.#out, this.#bytes);
        this.#out = [];
        this.#bytes = 0;
        for (let at = 0; at < out.length;) at += await this.#conn.write(out.subarray(at));
        if (this.#bytes < highWater) this.#wake();
      }
    } catch {
      this.#out = [];
      this.#bytes = 0;
      this.close();
    } finally {
      this.#writing = false;
    }
    if (this.#closing) this.#closeConn();
  }

  #closeConn(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
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
