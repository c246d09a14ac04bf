/**
 * The client side of one HTTP/2 cleartext connection (RFC 9113, prior knowledge) over a Deno connection
 * (a unix socket from Deno.connect): preface, SETTINGS, PING, GOAWAY, HEADERS/CONTINUATION through HPACK,
 * DATA with flow control both ways, RST_STREAM. Frames written within one tick leave in one socket write.
 */

import {
  defaultMaxFrameSize,
  defaultWindow,
  encodeGoaway,
  encodeSettings,
  ErrorCode,
  Flag,
  type Frame,
  FrameParser,
  FrameType,
  H2Error,
  preface,
  Setting,
} from "./frames.ts";
import type { HeaderField } from "./hpack.ts";
import { type HeaderBlock, HeaderBlockReader, writeHeaderBlock } from "./header_block.ts";
import {
  answerPing,
  checkMaxFrameSize,
  readGoaway,
  rstStreamCode,
  settingsEntries,
} from "./control_frames.ts";
import {
  changeInitialWindow,
  openConnectionWindow,
  openStreamWindow,
  ReceiveWindows,
  windowIncrement,
} from "./flow_control.ts";
import { type ClientStreamHost, H2ClientStream, H2StreamError } from "./client_stream.ts";
import { ConnWriter } from "./conn_writer.ts";

export { H2ClientStream, H2StreamError } from "./client_stream.ts";
export type { ResponseHead } from "./client_stream.ts";

export interface H2ClientOptions {
  /** Our per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE). */
  streamWindow?: number;
  /** Our connection receive window. */
  connectionWindow?: number;
}

const errnoNames: Record<string, string> = {
  NotFound: "ENOENT",
  ConnectionRefused: "ECONNREFUSED",
  PermissionDenied: "EACCES",
};

export class H2ClientConnection implements ClientStreamHost {
  sendWindow = defaultWindow;
  peerMaxFrameSize = defaultMaxFrameSize;
  readonly #conn: Deno.Conn;
  readonly #writer: ConnWriter;
  readonly #parser = new FrameParser();
  readonly #headerBlocks = new HeaderBlockReader();
  readonly #streams = new Map<number, H2ClientStream>();
  readonly #blocked = new Set<H2ClientStream>();
  readonly #recv: ReceiveWindows;
  /** Callers waiting for the server's concurrency limit to allow another stream. */
  readonly #waiting: (() => void)[] = [];
  #peerInitialWindow = defaultWindow;
  #peerMaxStreams = Infinity;
  #nextId = 1;
  #goingAway = false;
  #closed = false;
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
    this.#conn = conn;
    this.#writer = new ConnWriter(conn, () => this.#onClose());
    this.#recv = new ReceiveWindows((frame) => this.#writer.push(frame), {
      stream: options.streamWindow,
      connection: options.connectionWindow,
    });
    this.#writer.push(preface);
    this.#writer.push(encodeSettings([
      [Setting.enablePush, 0],
      [Setting.initialWindowSize, this.#recv.stream],
    ]));
    this.#recv.announce();
    this.#setRef(false);
    this.#done = this.#readLoop();
  }

  /** False once the connection is closed or going away: new calls need another connection. */
  get usable(): boolean {
    return !this.#closed && !this.#goingAway;
  }

  /** Streams still open. */
  get streamCount(): number {
    return this.#streams.size;
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
    while (this.#streams.size >= this.#peerMaxStreams && this.usable) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    if (!this.usable) {
      throw new H2StreamError(
        ErrorCode.refusedStream,
        "HTTP/2 connection is closed or going away",
        "refused",
      );
    }
    const id = this.#nextId;
    this.#nextId += 2;
    const stream = new H2ClientStream(this, id, { send: this.#peerInitialWindow, recv: this.#recv.stream });
    this.#streams.set(id, stream);
    this.#setRef(true);
    if (endStream) stream.markLocalEnded();
    writeHeaderBlock(this, id, { fields, endStream, maxFrameSize: this.peerMaxFrameSize });
    return stream;
  }

  /** Graceful close: GOAWAY, no new streams; the socket closes when the open ones finish. */
  close(): void {
    if (this.#closed) return;
    if (!this.#goingAway) {
      this.#goingAway = true;
      this.#writer.push(encodeGoaway(0, ErrorCode.noError));
      this.#wakeWaiters();
    }
    this.#endIfIdle();
  }

  /** Ends every stream and the socket now. */
  destroy(): void {
    if (this.#closed) return;
    this.#writer.close();
  }

  // --- ClientStreamHost ---------------------------------------------------------------------------

  writeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void {
    this.#writer.pushFrame(type, flags, streamId, payload);
  }

  block(stream: H2ClientStream): void {
    this.#blocked.add(stream);
  }

  consumed(stream: H2ClientStream | undefined, n: number): void {
    if (this.#closed) return;
    this.#recv.consumed(stream, n);
  }

  drained(): Promise<void> {
    return this.#writer.drained();
  }

  closed(stream: H2ClientStream): void {
    this.#streams.delete(stream.id);
    this.#blocked.delete(stream);
    this.#waiting.shift()?.();
    if (this.#streams.size === 0) this.#setRef(false);
    this.#endIfIdle();
  }

  // --- reading ------------------------------------------------------------------------------------

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        const buf = new Uint8Array(64 << 10);
        const n = await this.#conn.read(buf);
        if (n === null) break;
        for (const frame of this.#parser.push(buf.subarray(0, n))) {
          this.#frame(frame);
          if (this.#closed) return;
        }
      }
    } catch (err) {
      if (!this.#closed) this.#connectionError(err);
    } finally {
      this.#writer.close();
    }
  }

  #frame(f: Frame): void {
    this.#headerBlocks.check(f);
    switch (f.type) {
      case FrameType.data:
        return this.#data(f);
      case FrameType.headers:
        return this.#headerBlock(this.#headerBlocks.headers(f));
      case FrameType.continuation:
        return this.#headerBlock(this.#headerBlocks.continuation(f));
      case FrameType.settings:
        return this.#settings(f);
      case FrameType.ping:
        return answerPing(f, this);
      case FrameType.goaway:
        return this.#goaway(f);
      case FrameType.rstStream: {
        const code = rstStreamCode(f);
        this.#streams.get(f.streamId)?.abort(
          new H2StreamError(code, `Stream reset by the server (${errorName(code)})`),
        );
        return;
      }
      case FrameType.windowUpdate:
        return this.#windowUpdate(f);
      case FrameType.pushPromise:
        throw new H2Error(ErrorCode.protocol, "PUSH_PROMISE although push is disabled");
      default:
        return; // PRIORITY and unknown frame types are ignored (RFC 9113 §4.1, §5.3.2).
    }
  }

  #settings(f: Frame): void {
    const entries = settingsEntries(f, { strictAck: false });
    if (!entries) return;
    for (const [id, value] of entries) {
      if (id === Setting.initialWindowSize) {
        const from = this.#peerInitialWindow;
        this.#peerInitialWindow = value;
        changeInitialWindow(this.#streams, { from, to: value, checkOverflow: false });
      } else if (id === Setting.maxFrameSize) {
        this.peerMaxFrameSize = checkMaxFrameSize(value);
      } else if (id === Setting.maxConcurrentStreams) {
        this.#peerMaxStreams = value;
        this.#wakeWaiters();
      }
    }
    this.writeFrame(FrameType.settings, Flag.ack, 0);
  }

  #goaway(f: Frame): void {
    const { lastStreamId: last, code } = readGoaway(f, { strict: true })!;
    this.#goingAway = true;
    this.#wakeWaiters();
    // Streams above the last one the server processed never ran: their callers may retry elsewhere.
    for (const s of [...this.#streams.values()]) {
      if (s.id > last) {
        s.abort(
          new H2StreamError(
            ErrorCode.refusedStream,
            `Stream refused by GOAWAY (${errorName(code)})`,
            "refused",
          ),
        );
      }
    }
    this.#endIfIdle();
  }

  #headerBlock(block: HeaderBlock | undefined): void {
    if (block) {
      this.#streams.get(block.streamId)?.receiveHeaders(block.fields, (block.flags & Flag.endStream) !== 0);
    }
  }

  #data(f: Frame): void {
    const data = this.#recv.takeData(f);
    const size = f.payload.length;
    const stream = this.#streams.get(f.streamId);
    if (!stream || stream.remoteEnded) {
      // A stream we reset may still have DATA in flight: it counts against the connection window only.
      this.consumed(undefined, size);
      return;
    }
    if (this.#recv.admit(stream, size, data.length)) {
      stream.receiveData(data, (f.flags & Flag.endStream) !== 0);
    }
  }

  #windowUpdate(f: Frame): void {
    const increment = windowIncrement(f);
    if (f.streamId === 0) return openConnectionWindow(this, increment, this.#blocked);
    const stream = this.#streams.get(f.streamId);
    if (stream) openStreamWindow(stream, increment);
  }

  // --- writing and closing ------------------------------------------------------------------------

  #connectionError(err: unknown): void {
    const code = err instanceof H2Error ? err.code : ErrorCode.internal;
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof H2Error) this.#writer.push(encodeGoaway(0, code, message));
    this.#abortAll(new H2StreamError(code, `HTTP/2 connection failed: ${message}`, "closed"));
    this.#writer.close();
  }

  #endIfIdle(): void {
    if (this.#goingAway && this.#streams.size === 0 && !this.#closed) this.#writer.close();
  }

  #wakeWaiters(): void {
    for (const w of this.#waiting.splice(0)) w();
  }

  #abortAll(err: H2StreamError): void {
    for (const s of [...this.#streams.values()]) s.abort(err);
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#goingAway = true;
    this.#closed = true;
    this.#abortAll(new H2StreamError(ErrorCode.cancel, "HTTP/2 connection closed", "closed"));
    this.#streams.clear();
    this.#wakeWaiters();
  }

  /** An idle connection must not keep the process alive; one with calls in flight must. */
  #setRef(ref: boolean): void {
    if (ref === this.#refd || this.#closed) return;
    this.#refd = ref;
    if (ref) this.#conn.ref();
    else this.#conn.unref();
  }
}

function errorName(code: number): string {
  const name = Object.entries(ErrorCode).find(([, v]) => v === code)?.[0];
  return name ? `${name}, code ${code}` : `code ${code}`;
}
