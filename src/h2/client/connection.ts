/**
 * The client end of one HTTP/2 cleartext connection (RFC 9113, prior knowledge) over a Deno connection
 * (a unix socket from Deno.connect): the preface, streams opened within the server's concurrency limit,
 * GOAWAY's refused streams, and a socket that keeps the process alive only while calls are in flight.
 */

import { ErrorCode, errorName, H2Error, preface, Setting } from "../frames.ts";
import type { HeaderField } from "../hpack.ts";
import { type HeaderBlock, writeHeaderBlock } from "../header_block.ts";
import { H2Connection, type H2ConnectionOptions } from "../connection.ts";
import { H2StreamError } from "../stream.ts";
import { H2ClientStream } from "./stream.ts";
import { connSink } from "./conn_sink.ts";

export type H2ClientOptions = Omit<H2ConnectionOptions, "onError">;

const errnoNames: Record<string, string> = {
  NotFound: "ENOENT",
  ConnectionRefused: "ECONNREFUSED",
  PermissionDenied: "EACCES",
};

export class H2ClientConnection extends H2Connection<H2ClientStream> {
  readonly #conn: Deno.Conn;
  /** Callers waiting for the server's concurrency limit to allow another stream. */
  readonly #waiting: (() => void)[] = [];
  #refd = true;
  readonly #done: Promise<void>;

  /**
   * Connects to a unix socket and starts the HTTP/2 connection. Failures read like Node's
   * (`connect ENOENT <path>: …`), which callers match on.
   */
  static async connect(path: string, options: H2ClientOptions = {}): Promise<H2ClientConnection> {
    let conn: Deno.Conn;
    try {
      conn = await Deno.connect({ transport: "unix", path });
    } catch (err) {
      const e = err as Error & { code?: string };
      const errno = e.code ?? errnoNames[e.name] ?? e.name;
      throw new Error(`connect ${errno} ${path}: ${e.message}`, { cause: err });
    }
    return new H2ClientConnection(conn, options);
  }

  constructor(conn: Deno.Conn, options: H2ClientOptions = {}) {
    super(connSink(conn), { side: "client", peer: "server", parity: 1 }, options);
    this.#conn = conn;
    this.writer.push(preface);
    this.sendSettings([[Setting.enablePush, 0]]);
    this.#setRef(false);
    this.#done = this.#readLoop();
  }

  /** False once the connection is closed or going away: new calls need another connection. */
  get usable(): boolean {
    return !this.isClosed && !this.goingAway;
  }

  /** Settles when the connection has closed and its read loop ended. */
  get done(): Promise<void> {
    return this.#done;
  }

  /**
   * Opens a stream by sending the request headers (pseudo-headers first). Waits while the server's
   * SETTINGS_MAX_CONCURRENT_STREAMS is reached; throws a refused H2StreamError once the connection is
   * going away or closed.
   */
  async request(fields: HeaderField[], endStream: boolean): Promise<H2ClientStream> {
    while (this.streams.size >= this.peerMaxStreams && this.usable) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    if (!this.usable) {
      throw new H2StreamError(
        ErrorCode.refusedStream,
        "HTTP/2 connection is closed or going away",
        "refused",
      );
    }
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new H2ClientStream(this, id, { send: this.peerInitialWindow, recv: this.recv.stream });
    this.streams.set(id, stream);
    this.#setRef(true);
    if (endStream) stream.markLocalEnded();
    writeHeaderBlock(this, id, { fields, endStream, maxFrameSize: this.peerMaxFrameSize });
    return stream;
  }

  // --- what the client adds -----------------------------------------------------------------------

  /** A server cannot open streams (push is disabled); HEADERS on a stream we closed are late, and dropped. */
  protected headersOnNewStream(block: HeaderBlock): void {
    if (this.isIdle(block.streamId)) {
      throw new H2Error(
        ErrorCode.protocol,
        `HEADERS on stream ${block.streamId}, which the client never opened`,
      );
    }
  }

  /** Streams above the last one the server processed never ran: their callers may retry elsewhere. */
  protected peerGoingAway(lastStreamId: number, code: number): void {
    for (const s of [...this.streams.values()]) {
      if (s.id > lastStreamId) {
        s.abort(
          new H2StreamError(
            ErrorCode.refusedStream,
            `Stream refused by GOAWAY (${errorName(code)})`,
            "refused",
          ),
        );
      }
    }
  }

  protected override goingAwayNow(): void {
    this.#wakeWaiters();
  }

  protected override streamClosed(): void {
    this.#waiting.shift()?.();
    if (this.streams.size === 0) this.#setRef(false);
  }

  protected override peerMaxStreamsChanged(): void {
    this.#wakeWaiters();
  }

  protected override connectionClosed(): void {
    this.#wakeWaiters();
  }

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        const buf = new Uint8Array(64 << 10);
        const n = await this.#conn.read(buf);
        if (n === null) break;
        // Once closed, reading goes on only to learn when the socket is gone.
        this.receive(buf.subarray(0, n));
      }
    } catch { /* closed under the read, by us or by the server */ }
    this.transportClosed();
    this.writer.destroy();
  }

  #wakeWaiters(): void {
    for (const w of this.#waiting.splice(0)) w();
  }

  /** An idle connection must not keep the process alive; one with calls in flight must. */
  #setRef(ref: boolean): void {
    if (ref === this.#refd || this.isClosed) return;
    this.#refd = ref;
    if (ref) this.#conn.ref();
    else this.#conn.unref();
  }
}
