/**
 * The server side of one HTTP/2 connection (RFC 9113) over a node:net socket: preface, SETTINGS, PING,
 * GOAWAY both ways, HEADERS/CONTINUATION through HPACK, DATA with flow control in both directions, and
 * RST_STREAM. Frames written within one tick leave in one socket write.
 */

import type * as net from "node:net";
import {
  defaultMaxFrameSize,
  defaultWindow,
  encodeGoaway,
  encodeRstStream,
  encodeSettings,
  ErrorCode,
  Flag,
  type Frame,
  FrameParser,
  FrameType,
  H2Error,
  preface,
  Setting,
} from "../../h2/frames.ts";
import type { HeaderField } from "../../h2/hpack.ts";
import type { FrameBatcher } from "../../h2/frame_batcher.ts";
import { type HeaderBlock, HeaderBlockReader, writeHeaderBlock } from "../../h2/header_block.ts";
import {
  answerPing,
  checkMaxFrameSize,
  readGoaway,
  rstStreamCode,
  settingsEntries,
} from "../../h2/control_frames.ts";
import {
  changeInitialWindow,
  openConnectionWindow,
  openStreamWindow,
  ReceiveWindows,
  windowIncrement,
} from "../../h2/flow_control.ts";
import { H2Stream, type StreamHost, StreamResetError } from "./stream.ts";
import { socketWriter } from "./socket_writer.ts";

export interface H2ConnectionOptions {
  /** Called once per request stream, when its headers are complete. */
  onStream: (stream: H2Stream) => void;
  onClose?: () => void;
  /** Told about protocol errors that end the connection. */
  onError?: (err: Error) => void;
  maxConcurrentStreams?: number;
  /** Our per-stream receive window. */
  streamWindow?: number;
  /** Our connection receive window. */
  connectionWindow?: number;
}

export class H2Connection implements StreamHost {
  sendWindow = defaultWindow;
  peerMaxFrameSize = defaultMaxFrameSize;
  readonly #socket: net.Socket;
  readonly #options: H2ConnectionOptions;
  readonly #parser = new FrameParser();
  readonly #headerBlocks = new HeaderBlockReader();
  readonly #streams = new Map<number, H2Stream>();
  readonly #blocked = new Set<H2Stream>();
  readonly #maxStreams: number;
  readonly #recv: ReceiveWindows;
  #peerInitialWindow = defaultWindow;
  #prefaceLeft = preface.length;
  #settingsSeen = false;
  #lastStreamId = 0;
  #goingAway = false;
  #closed = false;
  readonly #writer: FrameBatcher;

  constructor(socket: net.Socket, options: H2ConnectionOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#writer = socketWriter(socket);
    this.#maxStreams = options.maxConcurrentStreams ?? 1000;
    this.#recv = new ReceiveWindows((frame) => this.#writer.push(frame), {
      stream: options.streamWindow,
      connection: options.connectionWindow,
    });
    socket.on("data", (chunk: Uint8Array) => this.receive(chunk));
    socket.on("error", () => {});
    socket.on("end", () => this.destroy());
    socket.on("close", () => this.#onSocketClose());
    this.#writer.push(encodeSettings([
      [Setting.maxConcurrentStreams, this.#maxStreams],
      [Setting.initialWindowSize, this.#recv.stream],
    ]));
    this.#recv.announce();
  }

  /** Streams still open. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Bytes read from the socket (the first chunk is handed in by whoever sniffed the protocol). */
  receive(chunk: Uint8Array): void {
    if (this.#closed) return;
    try {
      if (this.#prefaceLeft > 0) {
        const n = Math.min(this.#prefaceLeft, chunk.length);
        const at = preface.length - this.#prefaceLeft;
        for (let i = 0; i < n; i++) {
          if (chunk[i] !== preface[at + i]) {
            throw new H2Error(ErrorCode.protocol, "Invalid connection preface");
          }
        }
        this.#prefaceLeft -= n;
        chunk = chunk.subarray(n);
        if (chunk.length === 0) return;
      }
      for (const frame of this.#parser.push(chunk)) {
        this.#frame(frame);
        if (this.#closed) return;
      }
    } catch (err) {
      this.#connectionError(err);
    }
  }

  /** Graceful close: GOAWAY, no new streams, open ones finish; the socket closes when the last one does. */
  close(): void {
    if (this.#closed) return;
    if (!this.#goingAway) {
      this.#goingAway = true;
      this.#writer.push(encodeGoaway(this.#lastStreamId, ErrorCode.noError));
    }
    this.#endIfIdle();
  }

  /** Ends every stream and the socket now. */
  destroy(): void {
    if (this.#closed) return;
    this.#writer.flush();
    this.#socket.destroy();
    this.#onSocketClose();
  }

  // --- StreamHost ---------------------------------------------------------------------------------

  writeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void {
    this.#writer.pushFrame(type, flags, streamId, payload);
  }

  writeHeaders(streamId: number, fields: HeaderField[], endStream: boolean): void {
    writeHeaderBlock(this, streamId, {
      fields,
      endStream,
      maxFrameSize: this.peerMaxFrameSize,
    });
  }

  block(stream: H2Stream): void {
    this.#blocked.add(stream);
  }

  consumed(stream: H2Stream | undefined, n: number): void {
    this.#recv.consumed(stream, n);
  }

  drained(): Promise<void> {
    return this.#writer.drained();
  }

  closed(stream: H2Stream): void {
    this.#streams.delete(stream.id);
    this.#blocked.delete(stream);
    this.#endIfIdle();
  }

  // --- frames -------------------------------------------------------------------------------------

  #frame(f: Frame): void {
    this.#headerBlocks.check(f);
    if (!this.#settingsSeen && f.type !== FrameType.settings) {
      throw new H2Error(ErrorCode.protocol, "The first frame must be SETTINGS");
    }
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
        // Which streams the client processed does not matter to a server: it never retries.
        readGoaway(f, { strict: false });
        // The client opens no more streams; those open finish, then the connection closes.
        this.#goingAway = true;
        this.#endIfIdle();
        return;
      case FrameType.rstStream: {
        const code = rstStreamCode(f);
        this.#idleCheck(f.streamId);
        this.#streams.get(f.streamId)?.abort(
          new StreamResetError(code, `Stream reset by the client (code ${code})`),
        );
        return;
      }
      case FrameType.windowUpdate:
        return this.#windowUpdate(f);
      case FrameType.priority:
        if (f.streamId === 0) throw new H2Error(ErrorCode.protocol, "PRIORITY on stream 0");
        if (f.payload.length !== 5) this.#rst(f.streamId, ErrorCode.frameSize);
        return;
      case FrameType.pushPromise:
        throw new H2Error(ErrorCode.protocol, "A client must not send PUSH_PROMISE");
      default:
        return; // Unknown frame types are ignored (RFC 9113 §4.1).
    }
  }

  #settings(f: Frame): void {
    const entries = settingsEntries(f, { strictAck: true });
    if (!entries) return;
    this.#settingsSeen = true;
    for (const [id, value] of entries) {
      if (id === Setting.initialWindowSize) {
        const from = this.#peerInitialWindow;
        this.#peerInitialWindow = value;
        changeInitialWindow(this.#streams, { from, to: value, checkOverflow: true });
      } else if (id === Setting.maxFrameSize) {
        this.peerMaxFrameSize = checkMaxFrameSize(value);
      } else if (id === Setting.enablePush && value > 1) {
        throw new H2Error(ErrorCode.protocol, "SETTINGS_ENABLE_PUSH must be 0 or 1");
      }
    }
    this.writeFrame(FrameType.settings, Flag.ack, 0);
  }

  /** A complete request header block: a new stream, or the trailers of an open one. */
  #headerBlock(block: HeaderBlock | undefined): void {
    if (!block) return;
    const { fields } = block;
    const id = block.streamId;
    const endStream = (block.flags & Flag.endStream) !== 0;
    const existing = this.#streams.get(id);
    if (existing) {
      // Request trailers: they end the request body.
      if (existing.remoteEnded || !endStream) {
        throw new H2Error(ErrorCode.protocol, "HEADERS on an open stream");
      }
      existing.receiveEnd();
      return;
    }
    if (id % 2 === 0 || id <= this.#lastStreamId) {
      throw new H2Error(ErrorCode.protocol, `Stream id ${id} is not a new client stream`);
    }
    this.#lastStreamId = id;
    if (this.#goingAway || this.#streams.size >= this.#maxStreams) {
      this.#rst(id, ErrorCode.refusedStream);
      return;
    }
    const stream = new H2Stream(this, id, fields, {
      send: this.#peerInitialWindow,
      recv: this.#recv.stream,
    });
    this.#streams.set(id, stream);
    if (endStream) stream.receiveEnd();
    this.#options.onStream(stream);
  }

  #data(f: Frame): void {
    const data = this.#recv.takeData(f);
    const size = f.payload.length;
    const stream = this.#streams.get(f.streamId);
    if (!stream || stream.remoteEnded) {
      this.#idleCheck(f.streamId);
      this.consumed(undefined, size);
      stream?.reset(ErrorCode.streamClosed);
      return;
    }
    if (this.#recv.admit(stream, size, data.length)) {
      stream.receiveData(data, (f.flags & Flag.endStream) !== 0);
    }
  }

  #windowUpdate(f: Frame): void {
    const increment = windowIncrement(f);
    if (f.streamId === 0) return openConnectionWindow(this, increment, this.#blocked);
    this.#idleCheck(f.streamId);
    const stream = this.#streams.get(f.streamId);
    if (stream) openStreamWindow(stream, increment);
  }

  /** Frames other than HEADERS and PRIORITY on a stream the client never opened are a protocol error. */
  #idleCheck(id: number): void {
    if (id > this.#lastStreamId) throw new H2Error(ErrorCode.protocol, `Frame on idle stream ${id}`);
  }

  #rst(id: number, code: number): void {
    this.#writer.push(encodeRstStream(id, code));
  }

  #connectionError(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    this.#options.onError?.(e);
    const code = err instanceof H2Error ? err.code : ErrorCode.internal;
    this.#writer.push(encodeGoaway(this.#lastStreamId, code, e.message));
    this.#writer.flush();
    this.#socket.end();
    this.#onSocketClose();
  }

  #endIfIdle(): void {
    if (this.#goingAway && this.#streams.size === 0 && !this.#closed) {
      this.#writer.flush();
      this.#socket.end();
      this.#onSocketClose();
    }
  }

  #onSocketClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    const err = new StreamResetError(ErrorCode.cancel, "Connection closed");
    for (const s of [...this.#streams.values()]) s.abort(err);
    this.#streams.clear();
    this.#writer.stop();
    this.#options.onClose?.();
  }
}
