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
} from "../../h2/frames.ts";
import { encodeHeaders, type HeaderField, HpackDecoder, HpackError } from "../../h2/hpack.ts";
import { H2Stream, type StreamHost, StreamResetError } from "./stream.ts";
import { concat, SocketWriter } from "./socket_writer.ts";

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

const maxHeaderBlock = 256 << 10;

export class H2Connection implements StreamHost {
  sendWindow = defaultWindow;
  peerMaxFrameSize = defaultMaxFrameSize;
  readonly #socket: net.Socket;
  readonly #options: H2ConnectionOptions;
  readonly #parser = new FrameParser();
  readonly #decoder = new HpackDecoder();
  readonly #streams = new Map<number, H2Stream>();
  readonly #blocked = new Set<H2Stream>();
  readonly #maxStreams: number;
  readonly #streamWindow: number;
  readonly #connWindow: number;
  #peerInitialWindow = defaultWindow;
  #recvWindow: number;
  #recvUnacked = 0;
  #prefaceLeft = preface.length;
  #settingsSeen = false;
  #lastStreamId = 0;
  /** Header block being assembled from HEADERS + CONTINUATION. */
  #block: { streamId: number; flags: number; parts: Uint8Array[]; size: number } | undefined;
  #goingAway = false;
  #closed = false;
  readonly #writer: SocketWriter;

  constructor(socket: net.Socket, options: H2ConnectionOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#writer = new SocketWriter(socket);
    this.#maxStreams = options.maxConcurrentStreams ?? 1000;
    this.#streamWindow = options.streamWindow ?? 1 << 20;
    this.#connWindow = options.connectionWindow ?? 16 << 20;
    this.#recvWindow = this.#connWindow;
    socket.on("data", (chunk: Uint8Array) => this.receive(chunk));
    socket.on("error", () => {});
    socket.on("end", () => this.destroy());
    socket.on("close", () => this.#onSocketClose());
    this.#writer.push(encodeSettings([
      [Setting.maxConcurrentStreams, this.#maxStreams],
      [Setting.initialWindowSize, this.#streamWindow],
    ]));
    if (this.#connWindow > defaultWindow) {
      this.#writer.push(encodeWindowUpdate(0, this.#connWindow - defaultWindow));
    }
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
    const length = payload?.length ?? 0;
    const header = new Uint8Array(9);
    writeFrameHeader(header, 0, length, type, flags, streamId);
    this.#writer.push(header);
    if (payload && length > 0) this.#writer.push(payload);
  }

  writeHeaders(streamId: number, fields: HeaderField[], endStream: boolean): void {
    const block = encodeHeaders(fields);
    const max = this.peerMaxFrameSize;
    let flags = endStream ? Flag.endStream : 0;
    if (block.length <= max) {
      this.writeFrame(FrameType.headers, flags | Flag.endHeaders, streamId, block);
      return;
    }
    for (let at = 0, type: number = FrameType.headers; at < block.length; at += max) {
      const last = at + max >= block.length;
      this.writeFrame(type, flags | (last ? Flag.endHeaders : 0), streamId, block.slice(at, at + max));
      type = FrameType.continuation;
      flags = 0;
    }
  }

  block(stream: H2Stream): void {
    this.#blocked.add(stream);
  }

  consumed(stream: H2Stream | undefined, n: number): void {
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

  closed(stream: H2Stream): void {
    this.#streams.delete(stream.id);
    this.#blocked.delete(stream);
    this.#endIfIdle();
  }

  // --- frames -------------------------------------------------------------------------------------

  #frame(f: Frame): void {
    if (this.#block && f.type !== FrameType.continuation) {
      throw new H2Error(ErrorCode.protocol, "Expected CONTINUATION inside a header block");
    }
    if (!this.#settingsSeen && f.type !== FrameType.settings) {
      throw new H2Error(ErrorCode.protocol, "The first frame must be SETTINGS");
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
        if (f.streamId !== 0) throw new H2Error(ErrorCode.protocol, "GOAWAY on a stream");
        // The client opens no more streams; those open finish, then the connection closes.
        this.#goingAway = true;
        this.#endIfIdle();
        return;
      case FrameType.rstStream: {
        if (f.streamId === 0) throw new H2Error(ErrorCode.protocol, "RST_STREAM on stream 0");
        if (f.payload.length !== 4) {
          throw new H2Error(ErrorCode.frameSize, "RST_STREAM payload is not 4 bytes");
        }
        this.#idleCheck(f.streamId);
        const code = readUint32(f.payload, 0);
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
    if (f.streamId !== 0) throw new H2Error(ErrorCode.protocol, "SETTINGS on a stream");
    if (f.flags & Flag.ack) {
      if (f.payload.length !== 0) throw new H2Error(ErrorCode.frameSize, "SETTINGS ack with a payload");
      return;
    }
    if (f.payload.length % 6 !== 0) {
      throw new H2Error(ErrorCode.frameSize, "SETTINGS payload is not 6n bytes");
    }
    this.#settingsSeen = true;
    for (let at = 0; at < f.payload.length; at += 6) {
      const id = (f.payload[at]! << 8) | f.payload[at + 1]!;
      const value = readUint32(f.payload, at + 2);
      if (id === Setting.initialWindowSize) {
        if (value > maxWindow) {
          throw new H2Error(ErrorCode.flowControl, "SETTINGS_INITIAL_WINDOW_SIZE too large");
        }
        const delta = value - this.#peerInitialWindow;
        this.#peerInitialWindow = value;
        for (const s of this.#streams.values()) {
          s.sendWindow += delta;
          if (s.sendWindow > maxWindow) throw new H2Error(ErrorCode.flowControl, "Stream window overflow");
        }
        if (delta > 0) { for (const s of [...this.#streams.values()]) s.pump(); }
      } else if (id === Setting.maxFrameSize) {
        if (value < defaultMaxFrameSize || value > 0xffffff) {
          throw new H2Error(ErrorCode.protocol, `SETTINGS_MAX_FRAME_SIZE ${value} out of range`);
        }
        this.peerMaxFrameSize = value;
      } else if (id === Setting.enablePush && value > 1) {
        throw new H2Error(ErrorCode.protocol, "SETTINGS_ENABLE_PUSH must be 0 or 1");
      }
    }
    this.writeFrame(FrameType.settings, Flag.ack, 0);
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
    const bytes = block.parts.length === 1 ? block.parts[0]! : concat(block.parts, block.size);
    let fields: HeaderField[];
    try {
      // Always decoded, even for refused streams, to keep the HPACK table in step with the peer's.
      fields = this.#decoder.decode(bytes);
    } catch (err) {
      if (err instanceof HpackError) throw new H2Error(ErrorCode.compression, err.message);
      throw err;
    }
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
      recv: this.#streamWindow,
    });
    this.#streams.set(id, stream);
    if (endStream) stream.receiveEnd();
    this.#options.onStream(stream);
  }

  #data(f: Frame): void {
    if (f.streamId === 0) throw new H2Error(ErrorCode.protocol, "DATA on stream 0");
    const size = f.payload.length;
    this.#recvWindow -= size;
    if (this.#recvWindow < 0) throw new H2Error(ErrorCode.flowControl, "Connection receive window exceeded");
    const data = unpad(f);
    const stream = this.#streams.get(f.streamId);
    if (!stream || stream.remoteEnded) {
      this.#idleCheck(f.streamId);
      this.consumed(undefined, size);
      stream?.reset(ErrorCode.streamClosed);
      return;
    }
    stream.recvWindow -= size;
    if (stream.recvWindow < 0) {
      this.consumed(undefined, size);
      stream.reset(ErrorCode.flowControl);
      return;
    }
    // Padding is consumed on arrival.
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
    this.#idleCheck(f.streamId);
    const stream = this.#streams.get(f.streamId);
    if (!stream) return;
    if (increment === 0) return stream.reset(ErrorCode.protocol);
    stream.sendWindow += increment;
    if (stream.sendWindow > maxWindow) return stream.reset(ErrorCode.flowControl);
    stream.pump();
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
