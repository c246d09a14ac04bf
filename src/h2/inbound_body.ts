/**
 * The body a stream receives (a request body on the server, a response body in the client): DATA
 * chunks buffered until read, or handed straight to a waiting reader. A chunk counts as consumed, and
 * so opens the flow-control windows, only once it is read: a slow reader holds the peer back.
 */

export class InboundBody {
  readonly #consumed: (n: number) => void;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #reader: { resolve: (chunk: Uint8Array | null) => void; reject: (err: Error) => void } | undefined;

  /** `consumed` is told the size of every chunk a reader took. */
  constructor(consumed: (n: number) => void) {
    this.#consumed = consumed;
  }

  /** Bytes received and not read yet. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Next chunk; past the buffered ones, `error` fails the read and `ended` ends it with null. */
  read(error: Error | undefined, ended: boolean): Promise<Uint8Array | null> {
    const chunk = this.#chunks.shift();
    if (chunk) {
      this.#buffered -= chunk.length;
      this.#consumed(chunk.length);
      return Promise.resolve(chunk);
    }
    if (error) return Promise.reject(error);
    if (ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => this.#reader = { resolve, reject });
  }

  push(data: Uint8Array): void {
    if (data.length === 0) return;
    const reader = this.#reader;
    if (reader) {
      this.#reader = undefined;
      this.#consumed(data.length);
      reader.resolve(data);
    } else {
      this.#chunks.push(data);
      this.#buffered += data.length;
    }
  }

  /** The body ended: a reader waiting on an empty buffer gets null. */
  end(): void {
    const reader = this.#reader;
    if (reader && this.#chunks.length === 0) {
      this.#reader = undefined;
      reader.resolve(null);
    }
  }

  /** The stream failed: a waiting reader gets `err`. */
  fail(err: Error): void {
    const reader = this.#reader;
    this.#reader = undefined;
    reader?.reject(err);
  }

  /** Drops the unread chunks; their size, which still counts against the connection window. */
  discard(): number {
    const n = this.#buffered;
    this.#chunks = [];
    this.#buffered = 0;
    return n;
  }
}
