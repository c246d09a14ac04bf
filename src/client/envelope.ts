/** gRPC message framing: a flags byte, a 4-byte big-endian length, then the message. */

import { Code, ConnectError } from "@connectrpc/connect";

export function envelope(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  const n = message.length;
  out[1] = n >>> 24;
  out[2] = (n >>> 16) & 0xff;
  out[3] = (n >>> 8) & 0xff;
  out[4] = n & 0xff;
  out.set(message, 5);
  return out;
}

/**
 * Splits response DATA into messages. Chunks are kept as they arrive and joined once per message, so a
 * large message arriving in many frames is copied once.
 */
export class EnvelopeReader {
  readonly #readMax: number;
  #chunks: Uint8Array[] = [];
  #size = 0;

  constructor(readMax: number) {
    this.#readMax = readMax;
  }

  /** Messages completed by `chunk`. */
  push(chunk: Uint8Array): Uint8Array[] {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    const out: Uint8Array[] = [];
    while (this.#size >= 5) {
      const head = this.#peek(5);
      const length = ((head[1]! << 24) | (head[2]! << 16) | (head[3]! << 8) | head[4]!) >>> 0;
      if (head[0]! & 0x01) {
        throw new ConnectError(
          "protocol error: received a compressed message that was not asked for",
          Code.Internal,
        );
      }
      if (length > this.#readMax) {
        throw new ConnectError(
          `message size ${length} is larger than configured readMaxBytes ${this.#readMax}`,
          Code.ResourceExhausted,
        );
      }
      if (this.#size < 5 + length) break;
      this.#take(5);
      out.push(this.#take(length));
    }
    return out;
  }

  /** At the end of the body: a partial message is a protocol error. */
  end(): void {
    if (this.#size > 0) {
      throw new ConnectError(
        `protocol error: response ended inside a message (${this.#size} bytes left)`,
        Code.Internal,
      );
    }
  }

  #peek(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.length >= n) return first;
    const joined = this.#join(this.#chunks, this.#size);
    this.#chunks = [joined];
    return joined;
  }

  #take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    this.#size -= n;
    const first = this.#chunks[0]!;
    if (first.length > n) {
      this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.#chunks.shift();
      return first;
    }
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    return out;
  }

  #join(parts: Uint8Array[], size: number): Uint8Array {
    const out = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}
