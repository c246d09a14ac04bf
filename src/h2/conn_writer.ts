/** The client's frame writer: batches frames (FrameBatcher) into writes on a Deno connection. */

import { type ByteSink, FrameBatcher } from "./frame_batcher.ts";

/** Above this many unwritten bytes, writers of request bodies wait (drained()). */
const highWater = 256 << 10;

export class ConnWriter implements ByteSink {
  readonly #conn: Deno.Conn;
  readonly #onClose: () => void;
  readonly #batch = new FrameBatcher(this);
  #closing = false;
  #closed = false;

  /** `onClose` runs once, when close() is first called or a write fails. */
  constructor(conn: Deno.Conn, onClose: () => void) {
    this.#conn = conn;
    this.#onClose = onClose;
  }

  push(bytes: Uint8Array): void {
    this.#batch.push(bytes);
  }

  pushFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void {
    this.#batch.pushFrame(type, flags, streamId, payload);
  }

  /** Resolves once the backlog is under the high-water mark (immediately if it is, or once closed). */
  drained(): Promise<void> {
    return this.#batch.drained();
  }

  /** Closes the connection after what is queued has been written (or the write failed). */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#batch.stop();
    this.#onClose();
    if (this.#batch.idle) this.#closeConn();
  }

  // --- ByteSink -----------------------------------------------------------------------------------

  async write(out: Uint8Array): Promise<void> {
    // Deno.Conn.write may take part of the buffer.
    for (let at = 0; at < out.length;) at += await this.#conn.write(out.subarray(at));
  }

  full(backlog: number): boolean {
    return backlog >= highWater;
  }

  failed(): void {
    this.close();
  }

  settled(): void {
    if (this.#closing) this.#closeConn();
  }

  #closeConn(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}
