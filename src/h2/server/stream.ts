/** One request stream on the server: the request's headers and body in, the response's frames out. */

import { ErrorCode } from "../frames.ts";
import type { HeaderField } from "../hpack.ts";
import type { HeaderListKind } from "../header_fields.ts";
import { H2Stream, H2StreamError, type StreamHost } from "../stream.ts";

export class H2ServerStream extends H2Stream {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly scheme: string;
  /** The request's header list, pseudo-headers first. */
  readonly fields: HeaderField[];
  /** performance.now() when the request's headers arrived: a call's age, for the debug endpoint. */
  readonly openedAt = performance.now();
  #abort: AbortController | undefined;
  #headersSent = false;
  #header: Headers | undefined;

  constructor(host: StreamHost, id: number, fields: HeaderField[], windows: { send: number; recv: number }) {
    super(host, id, windows);
    this.fields = fields;
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

  get expectedHeaders(): HeaderListKind {
    return "trailers";
  }

  /** Request trailers: they end the request body. */
  receiveHeaders(_fields: HeaderField[], endStream: boolean): void {
    if (!endStream) {
      return this.reset(ErrorCode.protocol, `Request trailers of stream ${this.id} without END_STREAM`);
    }
    this.receiveEnd();
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
      if (this.error) this.#abort.abort(this.error);
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

  // --- response -----------------------------------------------------------------------------------

  /** Sends response headers (`:status` first); with `endStream` it is a complete (trailers-only) answer. */
  respond(fields: HeaderField[], endStream = false): void {
    if (this.closed || this.#headersSent) return;
    this.#headersSent = true;
    this.host.writeHeaders(this.id, fields, endStream);
    if (endStream) this.endLocal();
  }

  /** Queues response DATA; resolves once it is framed, rejects if the stream dies first. */
  write(data: Uint8Array): Promise<void> {
    return this.enqueue({ data, end: false });
  }

  /** Ends the response with trailers (a HEADERS frame) or, without, an empty DATA frame with END_STREAM. */
  end(trailers?: HeaderField[]): Promise<void> {
    return this.enqueue({ trailers, end: true });
  }

  protected override localBodyEnded(): void {
    if (!this.remoteEnded) {
      this.stopReceiving(new H2StreamError(ErrorCode.noError, "Response finished before the request"));
    }
    this.maybeClose();
  }

  protected override failing(err: H2StreamError): void {
    this.#abort?.abort(err);
  }

  /** The handler is done once it answered: a body it did not read will not be read. */
  protected get discardsUnreadBody(): boolean {
    return true;
  }
}
