/** One HTTP/2 request stream on the server side: the request's headers and body, the response's frames. */

import { DataSender, type Outgoing, type SendHost } from "../../h2/data_sender.ts";
import { ErrorCode, FrameType, u32 } from "../../h2/frames.ts";
import type { HeaderField } from "../../h2/hpack.ts";
import { InboundBody } from "../../h2/inbound_body.ts";

/** What a stream needs from its connection. */
export interface StreamHost extends SendHost<H2Stream> {
  writeHeaders(streamId: number, fields: HeaderField[], endStream: boolean): void;
  /** Request bytes consumed (or discarded): the connection may send WINDOW_UPDATE. */
  consumed(stream: H2Stream | undefined, n: number): void;
  closed(stream: H2Stream): void;
}

/** Raised into readers, writers and the signal when the peer resets the stream or the connection ends. */
export class StreamResetError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = "StreamResetError";
  }
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
  readonly #sender: DataSender<H2Stream>;
  readonly #body: InboundBody;
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
    this.#body = new InboundBody((n) => host.consumed(this, n));
    this.#sender = new DataSender(this, host, {
      sendTrailers: (trailers) => host.writeHeaders(id, trailers, true),
      onEnd: () => this.#closeLocal(),
    });
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
    return this.#body.read(this.#error, this.#remoteEnded);
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
    this.#body.push(data);
    if (end) this.receiveEnd();
  }

  receiveEnd(): void {
    if (this.#remoteEnded) return;
    this.#remoteEnded = true;
    this.#body.end();
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

  #enqueue(item: Outgoing): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#closed || this.#localEnded) return Promise.resolve();
    if (item.end) this.#localEnded = true;
    return this.#sender.send(item);
  }

  /** Frames what the windows allow; called again on WINDOW_UPDATE. */
  pump(): void {
    this.#sender.pump();
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
    this.#body.fail(err);
    this.#sender.settle(err);
  }

  #maybeClose(): void {
    if (this.#remoteEnded && this.#localEnded && this.#sender.empty) this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Bytes the handler never read still count against the connection window.
    const unread = this.#body.discard();
    if (unread > 0) this.#host.consumed(undefined, unread);
    this.#host.closed(this);
  }
}
