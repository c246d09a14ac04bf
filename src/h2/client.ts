/**
 * The client side of one HTTP/2 cleartext connection (RFC 9113, prior knowledge) over a Deno connection
 * (a unix socket from Deno.connect): preface, SETTINGS, PING, GOAWAY, HEADERS/CONTINUATION through HPACK,
 * DATA with flow control both ways, RST_STREAM. Frames written within one tick leave in one socket write.
 */

import {
  defaultMaxFrameSize,
  defaultWindow,
  encodeFrame,
  encodeGoaway,
  encodeSettings,
  encodeWindowUpdate,
  ErrorCode,
  Flag,
  type Frame,
  FrameParser,
  FrameType,
  H2Error,
  maxWindow,
  preface,
  readUint32,
  Setting,
  unpad,
  writeFrameHeader,
} from "./frames.ts";
import { encodeHeaders, type HeaderField, HpackDecoder, HpackError } from "./hpack.ts";
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

const maxHeaderBlock = 256 << 10;

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
  readonly #decoder = new HpackDecoder();
  readonly #streams = new Map<number, H2ClientStream>();
  readonly #blocked = new Set<H2ClientStream>();
  readonly #streamWindow: number;
  readonly #connWindow: number;
  /** Callers waiting for the server's concurrency limit to allow another stream. */
  readonly #waiting: (() => void)[] = [];
  #peerInitialWindow = defaultWindow;
  #peerMaxStreams = Infinity;
  #recvWindow: number;
  #recvUnacked = 0;
  #nextId = 1;
  #block: { streamId: number; flags: number; parts: Uint8Array[]; size: number } | undefined;
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
    this.#streamWindow = options.streamWindow ?? 1 << 20;
    this.#connWindow = options.connectionWindow ?? 16 << 20;
    this.#recvWindow = this.#connWindow;
    this.#writer.push(preface);
    this.#writer.push(encodeSettings([
      [Setting.enablePush, 0],
      [Setting.initialWindowSize, this.#streamWindow],
    ]));
    if (this.#connWindow > defaultWindow) {
      this.#writer.push(encodeWindowUpdate(0, this.#connWindow - defaultWindow));
    }
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
    const stream = new H2ClientStream(this, id, { send: this.#peerInitialWindow, recv: this.#streamWindow });
    this.#streams.set(id, stream);
    this.#setRef(true);
    if (endStream) stream.markLocalEnded();
    this.#writeHeaders(id, fields, endStream);
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
    const length = payload?.length ?? 0;
    const header = new Uint8Array(9);
    writeFrameHeader(header, 0, length, type, flags, streamId);
    this.#writer.push(header);
    if (payload && length > 0) this.#writer.push(payload);
  }

  block(stream: H2ClientStream): void {
    this.#blocked.add(stream);
  }

  consumed(stream: H2ClientStream | undefined, n: number): void {
    if (this.#closed) return;
    this.#recvUnacked += n;
    if (this.#recvUnacked >= this.#connWindow / 2) {
      this.#writer.push(encodeWindowUpdate(0, this.#recvUnacked));
      this.#recvWindow += this.#recvUnacked;
      this.#recvUnacked = 0;
    }
    if (!stream || stream.remoteEnded || stream.closed) return;
    stream.recvUnacked += n;
    if (stream.recvUnacked >= this.#streamWindow / 2) {
      this.#writer.push(encodeWindowUpdate(stream.id, stream.recvUnacked));
      stream.recvWindow += stream.recvUnacked;
      stream.recvUnacked = 0;
    }
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
    if (this.#block && f.type !== FrameType.continuation) {
      throw new H2Error(ErrorCode.protocol, "Expected CONTINUATION inside a header block");
    }
    switch (f.type) {
      case FrameType.data:
        return this.#data(f);
      case FrameType.headers:
        return this.#headers(f);
      case FrameType.continuation:
        return this.#continuation(f);
      case FrameType.settings:
        return this.#settings(f);
      case FrameType.ping:
        if (f.streamId !== 0) throw new H2Error(ErrorCode.protocol, "PING on a stream");
        if (f.payload.length !== 8) throw new H2Error(ErrorCode.frameSize, "PING payload is not 8 bytes");
        if (!(f.flags & Flag.ack)) this.writeFrame(FrameType.ping, Flag.ack, 0, f.payload.slice());
        return;
      case FrameType.goaway:
        return this.#goaway(f);
      case FrameType.rstStream: {
        if (f.streamId === 0) throw new H2Error(ErrorCode.protocol, "RST_STREAM on stream 0");
        if (f.payload.length !== 4) {
          throw new H2Error(ErrorCode.frameSize, "RST_STREAM payload is not 4 bytes");
        }
        const code = readUint32(f.payload, 0);
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
    if (f.streamId !== 0) throw new H2Error(ErrorCode.protocol, "SETTINGS on a stream");
    if (f.flags & Flag.ack) return;
    if (f.payload.length % 6 !== 0) {
      throw new H2Error(ErrorCode.frameSize, "SETTINGS payload is not 6n bytes");
    }
    for (let at = 0; at < f.payload.length; at += 6) {
      const id = (f.payload[at]! << 8) | f.payload[at + 1]!;
      const value = readUint32(f.payload, at + 2);
      if (id === Setting.initialWindowSize) {
        if (value > maxWindow) {
          throw new H2Error(ErrorCode.flowControl, "SETTINGS_INITIAL_WINDOW_SIZE too large");
        }
        const delta = value - this.#peerInitialWindow;
        this.#peerInitialWindow = value;
        for (const s of this.#streams.values()) s.sendWindow += delta;
        if (delta > 0) { for (const s of [...this.#streams.values()]) s.pump(); }
      } else if (id === Setting.maxFrameSize) {
        if (value < defaultMaxFrameSize || value > 0xffffff) {
          throw new H2Error(ErrorCode.protocol, `SETTINGS_MAX_FRAME_SIZE ${value} out of range`);
        }
        this.peerMaxFrameSize = value;
      } else if (id === Setting.maxConcurrentStreams) {
        this.#peerMaxStreams = value;
        this.#wakeWaiters();
      }
    }
    this.writeFrame(FrameType.settings, Flag.ack, 0);
  }

  #goaway(f: Frame): void {
    if (f.streamId !== 0) throw new H2Error(ErrorCode.protocol, "GOAWAY on a stream");
    if (f.payload.length < 8) throw new H2Error(ErrorCode.frameSize, "GOAWAY payload is too short");
    const last = readUint32(f.payload, 0) & maxWindow;
    const code = readUint32(f.payload, 4);
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

  #headers(f: Frame): void {
    if (f.streamId === 0) throw new H2Error(ErrorCode.protocol, "HEADERS on stream 0");
    let fragment = unpad(f);
    if (f.flags & Flag.priority) {
      if (fragment.length < 5) throw new H2Error(ErrorCode.frameSize, "HEADERS priority fields truncated");
      fragment = fragment.subarray(5);
    }
    this.#block = { streamId: f.streamId, flags: f.flags, parts: [fragment], size: fragment.length };
    if (f.flags & Flag.endHeaders) this.#headerBlockDone();
  }

  #continuation(f: Frame): void {
    const block = this.#block;
    if (!block || block.streamId !== f.streamId) {
      throw new H2Error(ErrorCode.protocol, "Unexpected CONTINUATION");
    }
    block.parts.push(f.payload);
    block.size += f.payload.length;
    if (block.size > maxHeaderBlock) throw new H2Error(ErrorCode.enhanceYourCalm, "Header block too large");
    if (f.flags & Flag.endHeaders) this.#headerBlockDone();
  }

  #headerBlockDone(): void {
    const block = this.#block!;
    this.#block = undefined;
    let bytes = block.parts[0]!;
    if (block.parts.length > 1) {
      bytes = new Uint8Array(block.size);
      let at = 0;
      for (const p of block.parts) {
        bytes.set(p, at);
        at += p.length;
      }
    }
    let fields: HeaderField[];
    try {
      // Always decoded, also for streams we reset, to keep the HPACK table in step with the server's.
      fields = this.#decoder.decode(bytes);
    } catch (err) {
      if (err instanceof HpackError) throw new H2Error(ErrorCode.compression, err.message);
      throw err;
    }
    this.#streams.get(block.streamId)?.receiveHeaders(fields, (block.flags & Flag.endStream) !== 0);
  }

  #data(f: Frame): void {
    if (f.streamId === 0) throw new H2Error(ErrorCode.protocol, "DATA on stream 0");
    const size = f.payload.length;
    this.#recvWindow -= size;
    if (this.#recvWindow < 0) throw new H2Error(ErrorCode.flowControl, "Connection receive window exceeded");
    const data = unpad(f);
    const stream = this.#streams.get(f.streamId);
    if (!stream || stream.remoteEnded) {
      // A stream we reset may still have DATA in flight: it counts against the connection window only.
      this.consumed(undefined, size);
      return;
    }
    stream.recvWindow -= size;
    if (stream.recvWindow < 0) {
      this.consumed(undefined, size);
      stream.reset(ErrorCode.flowControl);
      return;
    }
    if (size > data.length) this.consumed(stream, size - data.length);
    stream.receiveData(data, (f.flags & Flag.endStream) !== 0);
  }

  #windowUpdate(f: Frame): void {
    if (f.payload.length !== 4) {
      throw new H2Error(ErrorCode.frameSize, "WINDOW_UPDATE payload is not 4 bytes");
    }
    const increment = readUint32(f.payload, 0) & maxWindow;
    if (f.streamId === 0) {
      if (increment === 0) throw new H2Error(ErrorCode.protocol, "WINDOW_UPDATE of 0");
      this.sendWindow += increment;
      if (this.sendWindow > maxWindow) throw new H2Error(ErrorCode.flowControl, "Connection window overflow");
      const blocked = [...this.#blocked];
      this.#blocked.clear();
      for (const s of blocked) s.pump();
      return;
    }
    const stream = this.#streams.get(f.streamId);
    if (!stream) return;
    if (increment === 0) return stream.reset(ErrorCode.protocol);
    stream.sendWindow += increment;
    if (stream.sendWindow > maxWindow) return stream.reset(ErrorCode.flowControl);
    stream.pump();
  }

  // --- writing and closing ------------------------------------------------------------------------

  #writeHeaders(streamId: number, fields: HeaderField[], endStream: boolean): void {
    const block = encodeHeaders(fields);
    const max = this.peerMaxFrameSize;
    let flags = endStream ? Flag.endStream : 0;
    for (let at = 0, type: number = FrameType.headers; at === 0 || at < block.length; at += max) {
      const last = at + max >= block.length;
      this.#writer.push(
        encodeFrame(type, flags | (last ? Flag.endHeaders : 0), streamId, block.subarray(at, at + max)),
      );
      type = FrameType.continuation;
      flags = 0;
    }
  }

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
