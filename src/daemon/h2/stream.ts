/** One HTTP/2 request stream on the server side: the request's headers and body, the response's frames. */

import { ErrorCode, Flag, FrameType } from "../../h2/frames.ts";
import type { HeaderField } from "../../h2/hpack.ts";

/** What a stream needs from its connection. */
export interface StreamHost {
  /** Send window of the connection; DATA takes from it. */
  sendWindow: number;
  readonly peerMaxFrameSize: number;
  writeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void;
  writeHeaders(streamId: number, fields: HeaderField[], endStream: boolean): void;
  /** Asks to be pumped again when the connection window opens. */
  block(stream: H2Stream): void;
  /** Request bytes consumed (or discarded): the connection may send WINDOW_UPDATE. */
  consumed(stream: H2Stream | undefined, n: number): void;
  /** Resolves once the socket has room again (immediately if it has). */
  drained(): Promise<void>;
  closed(stream: H2Stream): void;
}

/** Raised into readers, writers and the signal when the peer resets the stream or the connection ends. */
export class StreamResetError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = "StreamResetError";
  }
}

interface Outgoing {
  data?: Uint8Array;
  trailers?: HeaderField[];
  end: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class H2Stream {
  readonly id: number;
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly scheme: string;
  readonly fields: HeaderField[];
  /** Peer's window for this stream. */
  sendWindow: number;
  /** Our window for this stream's request body. */
  recvWindow: number;
  recvUnacked = 0;
  readonly #host: StreamHost;
  readonly #queue: Outgoing[] = [];
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #reader: ((chunk: Uint8Array | null) => void) | undefined;
  #readerFail: ((err: Error) => void) | undefined;
  #error: Error | undefined;
  #abort: AbortController | undefined;
  #headersSent = false;
  #remoteEnded = false;
  #localEnded = false;
  #closed = false;
  #header: Headers | undefined;

  constructor(host: StreamHost, id: number, fields: HeaderField[], windows: { send: number; recv: number }) {
    this.#host = host;
    this.id = id;
    this.fields = fields;
    this.sendWindow = windows.send;
    this.recvWindow = windows.recv;
    let method = "", path = "", authority = "", scheme = "";
    for (const [name, value] of fields) {
      if (name.charCodeAt(0) !== 58) break; // ':' — pseudo-headers come first
      if (name === ":method") method = value;
      else if (name === ":path") path = value;
      else if (name === ":authority") authority = value;
      else if (name === ":scheme") scheme = value;
    }
    this.method = method;
    this.path = path;
    this.authority = authority;
    this.scheme = scheme;
  }

  /** A request header by (lowercase) name, without building a Headers object. */
  header(name: string): string | undefined {
    for (const [n, v] of this.fields) if (n === name) return v;
    return undefined;
  }

  /** Request headers without pseudo-headers. */
  get requestHeader(): Headers {
    if (!this.#header) {
      const h = new Headers();
      for (const [n, v] of this.fields) if (n.charCodeAt(0) !== 58) h.append(n, v);
      this.#header = h;
    }
    return this.#header;
  }

  /** Aborted when the peer resets the stream or the connection goes away. */
  get signal(): AbortSignal {
    if (!this.#abort) {
      this.#abort = new AbortController();
      if (this.#error) this.#abort.abort(this.#error);
    }
    return this.#abort.signal;
  }

  /** Aborts the signal (a deadline passed) without touching the stream. */
  cancelSignal(reason: Error): void {
    this.#abort ??= new AbortController();
    this.#abort.abort(reason);
  }

  get headersSent(): boolean {
    return this.#headersSent;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get remoteEnded(): boolean {
    return this.#remoteEnded;
  }

  // --- request body -------------------------------------------------------------------------------

  /** Next chunk of the request body, or null at its end. Consuming it opens the flow-control windows. */
  read(): Promise<Uint8Array | null> {
    const chunk = this.#chunks.shift();
    if (chunk) {
      this.#buffered -= chunk.length;
      this.#host.consumed(this, chunk.length);
      return Promise.resolve(chunk);
    }
    if (this.#error) return Promise.reject(this.#error);
    if (this.#remoteEnded) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      this.#reader = resolve;
      this.#readerFail = reject;
    });
  }

  async *body(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const chunk = await this.read();
      if (chunk === null) return;
      yield chunk;
    }
  }

  /** From the connection: request DATA (already flow-control checked). */
  receiveData(data: Uint8Array, end: boolean): void {
    if (data.length > 0) {
      const reader = this.#reader;
      if (reader) {
        this.#reader = this.#readerFail = undefined;
        this.#host.consumed(this, data.length);
        reader(data);
      } else {
        this.#chunks.push(data);
        this.#buffered += data.length;
      }
    }
    if (end) this.receiveEnd();
  }

  receiveEnd(): void {
    if (this.#remoteEnded) return;
    this.#remoteEnded = true;
    const reader = this.#reader;
    if (reader && this.#chunks.length === 0) {
      this.#reader = this.#readerFail = undefined;
      reader(null);
    }
    this.#maybeClose();
  }

  // --- response -----------------------------------------------------------------------------------

  /** Sends response headers (`:status` first); with `endStream` it is a complete (trailers-only) answer. */
  respond(fields: HeaderField[], endStream = false): void {
    if (this.#closed || this.#headersSent) return;
    this.#headersSent = true;
    this.#host.writeHeaders(this.id, fields, endStream);
    if (endStream) this.#endLocal();
  }

  /** Queues response DATA; resolves once it is framed and the socket has room, rejects if the stream dies. */
  write(data: Uint8Array): Promise<void> {
    return this.#enqueue({ data, end: false });
  }

  /** Ends the response with trailers (a HEADERS frame) or, without, an empty DATA frame with END_STREAM. */
  end(trailers?: HeaderField[]): Promise<void> {
    return this.#enqueue({ trailers, end: true });
  }

  #enqueue(item: Omit<Outgoing, "resolve" | "reject">): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#closed || this.#localEnded) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ ...item, resolve, reject });
      if (item.end) this.#localEnded = true;
      this.pump();
    });
  }

  /** Frames what the windows allow; called again on WINDOW_UPDATE. */
  pump(): void {
    const host = this.#host;
    while (this.#queue.length > 0 && !this.#closed) {
      const item = this.#queue[0]!;
      const data = item.data;
      if (data && data.length > 0) {
        const n = Math.min(data.length, this.sendWindow, host.sendWindow, host.peerMaxFrameSize);
        if (n <= 0) {
          if (host.sendWindow <= 0) host.block(this);
          return;
        }
        host.writeFrame(FrameType.data, 0, this.id, n === data.length ? data : data.subarray(0, n));
        this.sendWindow -= n;
        host.sendWindow -= n;
        item.data = data.subarray(n);
        continue;
      }
      this.#queue.shift();
      if (item.end) {
        if (item.trailers) host.writeHeaders(this.id, item.trailers, true);
        else host.writeFrame(FrameType.data, Flag.endStream, this.id);
        item.resolve();
        this.#closeLocal();
      } else {
        host.drained().then(item.resolve);
      }
    }
  }

  #endLocal(): void {
    this.#localEnded = true;
    this.#closeLocal();
  }

  #closeLocal(): void {
    // A response finished before the request: tell the peer to stop sending (RFC 9113 §8.1).
    if (!this.#remoteEnded) {
      this.#host.writeFrame(FrameType.rstStream, 0, this.id, u32(ErrorCode.noError));
      this.#remoteEnded = true;
      this.#fail(new StreamResetError(ErrorCode.noError, "Response finished before the request"));
    }
    this.#maybeClose();
  }

  /** Resets the stream from our side. */
  reset(code: number): void {
    if (this.#closed) return;
    this.#host.writeFrame(FrameType.rstStream, 0, this.id, u32(code));
    this.#fail(new StreamResetError(code, `Stream ${this.id} reset by the server (code ${code})`));
    this.#close();
  }

  /** From the connection: the peer reset the stream, or the connection ended. */
  abort(err: Error): void {
    if (this.#closed) return;
    this.#fail(err);
    this.#close();
  }

  #fail(err: Error): void {
    if (this.#error) return;
    this.#error = err;
    this.#abort?.abort(err);
    const fail = this.#readerFail;
    this.#reader = this.#readerFail = undefined;
    fail?.(err);
    for (const item of this.#queue.splice(0)) item.reject(err);
  }

  #maybeClose(): void {
    if (this.#remoteEnded && this.#localEnded && this.#queue.length === 0) this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Bytes the handler never read still count against the connection window.
    if (this.#buffered > 0) this.#host.consumed(undefined, this.#buffered);
    this.#chunks = [];
    this.#buffered = 0;
    this.#host.closed(this);
  }
}

function u32(v: number): Uint8Array {
  return Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}
