/**
 * What a stream is on either end of a connection (RFC 9113 §5.1): a body coming in, a body going out under
 * flow control, ends in each direction, resets both ways, and the close once both directions are done.
 * The server's request streams and the client's call streams build on it.
 */

import { DataSender, type Outgoing, type SendHost } from "./data_sender.ts";
import { ErrorCode, errorName, FrameType, u32 } from "./frames.ts";
import type { HeaderField } from "./hpack.ts";
import type { HeaderListKind } from "./header_fields.ts";
import { InboundBody } from "./inbound_body.ts";

/**
 * A stream that ended abnormally. `kind`: "reset" by either side (`code` says why), "refused" (the peer
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

/** What a stream needs from its connection. */
export interface StreamHost extends SendHost<H2Stream> {
  /** "client" or "server": the end this stream is on, for messages. */
  readonly side: string;
  writeHeaders(streamId: number, fields: HeaderField[], endStream: boolean): void;
  /** Body bytes consumed (or discarded): the connection may send WINDOW_UPDATE. */
  consumed(stream: H2Stream | undefined, n: number): void;
  closed(stream: H2Stream): void;
}

export abstract class H2Stream {
  readonly id: number;
  /** Peer's window for this stream. */
  sendWindow: number;
  /** Our window for the body we receive. */
  recvWindow: number;
  recvUnacked = 0;
  protected readonly host: StreamHost;
  readonly #sender: DataSender<H2Stream>;
  readonly #body: InboundBody;
  #error: H2StreamError | undefined;
  #remoteEnded = false;
  #localEnded = false;
  #closed = false;

  constructor(host: StreamHost, id: number, windows: { send: number; recv: number }) {
    this.host = host;
    this.id = id;
    this.sendWindow = windows.send;
    this.recvWindow = windows.recv;
    this.#body = new InboundBody((n) => host.consumed(this, n));
    this.#sender = new DataSender<H2Stream>(this, host, {
      sendTrailers: (trailers) => host.writeHeaders(id, trailers, true),
      onEnd: () => this.localBodyEnded(),
    });
  }

  /** What the next header block on this stream must be. */
  abstract get expectedHeaders(): HeaderListKind;

  /** From the connection: a complete, well-formed header block for this stream. */
  abstract receiveHeaders(fields: HeaderField[], endStream: boolean): void;

  get closed(): boolean {
    return this.#closed;
  }

  get remoteEnded(): boolean {
    return this.#remoteEnded;
  }

  protected get localEnded(): boolean {
    return this.#localEnded;
  }

  protected get error(): H2StreamError | undefined {
    return this.#error;
  }

  // --- the body we receive ------------------------------------------------------------------------

  /** Next chunk of the body, or null at its end. Consuming it opens the flow-control windows. */
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

  /** From the connection: DATA, already flow-control checked. */
  receiveData(data: Uint8Array, end: boolean): void {
    this.#body.push(data);
    if (end) this.receiveEnd();
  }

  /** From the connection: END_STREAM. */
  receiveEnd(): void {
    if (this.#remoteEnded) return;
    this.#remoteEnded = true;
    this.remoteEnding();
    this.#body.end();
    this.maybeClose();
  }

  /** Hook: the peer's direction is ending (before readers learn it). */
  protected remoteEnding(): void {}

  // --- the body we send ---------------------------------------------------------------------------

  /** Queues a piece of our body; resolves once it is framed, rejects if the stream dies first. */
  protected enqueue(item: Outgoing): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#closed || this.#localEnded) return Promise.resolve();
    if (item.end) this.#localEnded = true;
    return this.#sender.send(item);
  }

  /** Our direction ended without a body (END_STREAM on our HEADERS). */
  protected endLocal(): void {
    this.#localEnded = true;
    this.localBodyEnded();
  }

  /** Hook: the end of our body has been framed. */
  protected localBodyEnded(): void {
    this.maybeClose();
  }

  /** Frames what the windows and the writer allow; called again on WINDOW_UPDATE, SETTINGS and drain. */
  pump(): void {
    this.#sender.pump();
  }

  // --- ends ---------------------------------------------------------------------------------------

  /**
   * Our answer is complete without the rest of the peer's body: RST_STREAM(NO_ERROR) asks it to stop
   * sending (RFC 9113 §8.1), and readers of that body get `err`. The server's response ended early.
   */
  protected stopReceiving(err: H2StreamError): void {
    this.host.writeFrame(FrameType.rstStream, 0, this.id, u32(ErrorCode.noError));
    this.#remoteEnded = true;
    this.fail(err);
  }

  /**
   * The peer's answer is complete, so the rest of our body is of no use: RST_STREAM(NO_ERROR) says we stop
   * sending, and what is queued of it is dropped. The client's response arrived before its request ended.
   */
  protected stopSending(): void {
    this.host.writeFrame(FrameType.rstStream, 0, this.id, u32(ErrorCode.noError));
    this.#localEnded = true;
    this.#sender.settle();
  }

  /** Resets the stream from our side (CANCEL by default); pending reads and writes fail. */
  reset(code: number = ErrorCode.cancel, message?: string): void {
    if (this.#closed) return;
    this.host.writeFrame(FrameType.rstStream, 0, this.id, u32(code));
    this.fail(
      new H2StreamError(
        code,
        message ?? `Stream ${this.id} reset by the ${this.host.side} (${errorName(code)})`,
      ),
    );
    this.#close();
  }

  /** From the connection: the peer reset the stream, GOAWAY refused it, or the connection ended. */
  abort(err: H2StreamError): void {
    if (this.#closed) return;
    this.fail(err);
    this.#close();
  }

  protected fail(err: H2StreamError): void {
    if (this.#error) return;
    this.#error = err;
    this.failing(err);
    this.#body.fail(err);
    this.#sender.settle(err);
  }

  /** Hook: the stream failed with `err` (before its reader and writers learn it). */
  protected failing(_err: H2StreamError): void {}

  protected maybeClose(): void {
    if (this.#remoteEnded && this.#localEnded && this.#sender.empty) this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Bytes nobody will read still count against the connection window.
    if (this.#error || this.discardsUnreadBody) {
      const unread = this.#body.discard();
      if (unread > 0) this.host.consumed(undefined, unread);
    }
    this.host.closed(this);
  }

  /**
   * Whether a body still unread when the stream closes without an error is dropped. A server's handler is
   * done once it answered; a client reads the response after it arrived in full.
   */
  protected abstract get discardsUnreadBody(): boolean;
}
