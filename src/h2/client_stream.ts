/** One HTTP/2 request stream on the client side: the request's body out, the response's headers, body and trailers in. */

import { DataSender, type SendHost } from "./data_sender.ts";
import { ErrorCode, FrameType, u32 } from "./frames.ts";
import type { HeaderField } from "./hpack.ts";
import { InboundBody } from "./inbound_body.ts";

/** What a client stream needs from its connection. */
export interface ClientStreamHost extends SendHost<H2ClientStream> {
  /** Response bytes consumed (or discarded): the connection may send WINDOW_UPDATE. */
  consumed(stream: H2ClientStream | undefined, n: number): void;
  closed(stream: H2ClientStream): void;
}

/**
 * A stream that ended abnormally. `kind`: "reset" by either side (`code` says why), "refused" (the server
 * never processed it: REFUSED_STREAM, or above GOAWAY's last stream id, so a retry is safe), or "closed"
 * (the connection ended under it).
 */
export class H2StreamError extends Error {
  readonly kind: "reset" | "refused" | "closed";
  constructor(readonly code: number, message: string, kind: "reset" | "refused" | "closed" = "reset") {
    super(message);
    this.name = "H2StreamError";
    this.kind = kind === "reset" && code === ErrorCode.refusedStream ? "refused" : kind;
  }
}

export interface ResponseHead {
  status: number;
  fields: HeaderField[];
  /** The response ended with these headers (a trailers-only answer). */
  endStream: boolean;
}

export class H2ClientStream {
  readonly id: number;
  /** Peer's window for this stream. */
  sendWindow: number;
  /** Our window for this stream's response body. */
  recvWindow: number;
  recvUnacked = 0;
  /** Response trailers, once they arrived. */
  trailers: HeaderField[] | undefined;
  readonly response: Promise<ResponseHead>;
  readonly #host: ClientStreamHost;
  readonly #sender: DataSender<H2ClientStream>;
  #head: { resolve: (h: ResponseHead) => void; reject: (e: Error) => void } | undefined;
  readonly #body: InboundBody;
  #error: H2StreamError | undefined;
  #gotHead = false;
  #remoteEnded = false;
  #localEnded = false;
  #closed = false;

  constructor(host: ClientStreamHost, id: number, windows: { send: number; recv: number }) {
    this.#host = host;
    this.id = id;
    this.sendWindow = windows.send;
    this.recvWindow = windows.recv;
    this.#body = new InboundBody((n) => host.consumed(this, n));
    this.#sender = new DataSender(this, host, { onEnd: () => this.#maybeClose() });
    this.response = new Promise((resolve, reject) => this.#head = { resolve, reject });
    // Callers that only read the body must not see an unhandled rejection here.
    this.response.catch(() => {});
  }

  get closed(): boolean {
    return this.#closed;
  }

  get remoteEnded(): boolean {
    return this.#remoteEnded;
  }

  /** Set when the request was sent with END_STREAM on its HEADERS frame. */
  markLocalEnded(): void {
    this.#localEnded = true;
  }

  // --- request body -------------------------------------------------------------------------------

  /**
   * Queues request DATA (with `end`, the last of the body); resolves once it is framed and the socket has
   * room, rejects if the stream dies.
   */
  write(data: Uint8Array, end = false): Promise<void> {
    return this.#enqueue(data, end);
  }

  /** Ends the request body (an empty DATA frame with END_STREAM after what is queued). */
  end(): Promise<void> {
    return this.#enqueue(new Uint8Array(0), true);
  }

  #enqueue(data: Uint8Array, end: boolean): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#closed || this.#localEnded) return Promise.resolve();
    if (end) this.#localEnded = true;
    return this.#sender.send({ data, end });
  }

  /** Frames what the windows allow; called again on WINDOW_UPDATE and SETTINGS. */
  pump(): void {
    this.#sender.pump();
  }

  // --- response -----------------------------------------------------------------------------------

  /** Next chunk of the response body, or null at its end. Consuming it opens the flow-control windows. */
  read(): Promise<Uint8Array | null> {
    return this.#body.read(this.#error, this.#remoteEnded);
  }

  /** From the connection: a complete header block. */
  receiveHeaders(fields: HeaderField[], endStream: boolean): void {
    if (this.#remoteEnded) return;
    if (!this.#gotHead) {
      const status = Number(fields.find(([n]) => n === ":status")?.[1] ?? NaN);
      // Informational answers (100 Continue) precede the real one.
      if (status >= 100 && status < 200 && !endStream) return;
      this.#gotHead = true;
      this.#head?.resolve({ status, fields, endStream });
      this.#head = undefined;
    } else if (endStream) {
      this.trailers = fields;
    } else {
      this.#fail(new H2StreamError(ErrorCode.protocol, "Response trailers without END_STREAM"));
      this.reset(ErrorCode.protocol);
      return;
    }
    if (endStream) this.receiveEnd();
  }

  /** From the connection: response DATA (already flow-control checked). */
  receiveData(data: Uint8Array, end: boolean): void {
    if (!this.#gotHead) {
      this.#host.consumed(undefined, data.length);
      this.#fail(new H2StreamError(ErrorCode.protocol, "Response DATA before HEADERS"));
      this.reset(ErrorCode.protocol);
      return;
    }
    this.#body.push(data);
    if (end) this.receiveEnd();
  }

  receiveEnd(): void {
    if (this.#remoteEnded) return;
    this.#remoteEnded = true;
    if (!this.#gotHead) this.#fail(new H2StreamError(ErrorCode.protocol, "Response ended without HEADERS"));
    this.#body.end();
    // The response is complete: a request body still being sent is of no use to the server (RFC 9113 §8.1).
    if (!this.#localEnded) {
      this.#localEnded = true;
      this.#host.writeFrame(FrameType.rstStream, 0, this.id, u32(ErrorCode.noError));
      this.#sender.settle();
    }
    this.#maybeClose();
  }

  /** Resets the stream from our side (CANCEL by default); pending reads and writes fail. */
  reset(code: number = ErrorCode.cancel, reason?: Error): void {
    if (this.#closed) return;
    this.#host.writeFrame(FrameType.rstStream, 0, this.id, u32(code));
    this.#fail(new H2StreamError(code, reason?.message ?? `Stream ${this.id} cancelled by the client`));
    this.#close();
  }

  /** From the connection: the server reset the stream, GOAWAY refused it, or the connection ended. */
  abort(err: H2StreamError): void {
    if (this.#closed) return;
    this.#fail(err);
    this.#close();
  }

  #fail(err: H2StreamError): void {
    if (this.#error) return;
    this.#error = err;
    this.#head?.reject(err);
    this.#head = undefined;
    this.#body.fail(err);
    this.#sender.settle(err);
  }

  #maybeClose(): void {
    if (this.#remoteEnded && this.#localEnded && this.#sender.empty) this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Bytes nobody read still count against the connection window.
    if (this.#error && this.#body.buffered > 0) this.#host.consumed(undefined, this.#body.discard());
    this.#host.closed(this);
  }
}
