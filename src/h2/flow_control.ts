/**
 * HTTP/2 flow control (RFC 9113 §5.2, §6.9) as both ends keep it: our receive windows, given back with
 * WINDOW_UPDATE; the peer's windows, opened by its WINDOW_UPDATE and SETTINGS_INITIAL_WINDOW_SIZE.
 */

import {
  defaultWindow,
  ErrorCode,
  type Frame,
  FrameType,
  H2Error,
  maxWindow,
  readUint32,
  u32,
  unpad,
} from "./frames.ts";
import type { FrameOut } from "./header_block.ts";

/** What flow control needs of a stream. */
export interface FlowStream {
  readonly id: number;
  /** Peer's window for this stream. */
  sendWindow: number;
  /** Our window for this stream. */
  recvWindow: number;
  recvUnacked: number;
  readonly remoteEnded: boolean;
  readonly closed: boolean;
  /** Frames queued DATA the windows now allow. */
  pump(): void;
  reset(code: number): void;
}

/**
 * Our receive windows. Consumed bytes are given back once half a window is used up, so a busy stream
 * costs one WINDOW_UPDATE per half window rather than one per DATA frame.
 */
export class ReceiveWindows {
  /** Our per-stream window (SETTINGS_INITIAL_WINDOW_SIZE). */
  readonly stream: number;
  /** Our connection window. */
  readonly connection: number;
  readonly #out: FrameOut;
  #window: number;
  #unacked = 0;

  /** `out`: the connection, where WINDOW_UPDATE frames go. */
  constructor(out: FrameOut, sizes: { stream?: number; connection?: number } = {}) {
    this.#out = out;
    this.stream = sizes.stream ?? 1 << 20;
    this.connection = sizes.connection ?? 16 << 20;
    this.#window = this.connection;
  }

  /** After our SETTINGS: the connection window starts at 65535 whatever we announce, so open it. */
  announce(): void {
    if (this.connection > defaultWindow) this.#windowUpdate(0, this.connection - defaultWindow);
  }

  /** A DATA frame arrived: it takes its size, padding included, from the connection window. */
  takeData(f: Frame): Uint8Array {
    if (f.streamId === 0) throw new H2Error(ErrorCode.protocol, "DATA on stream 0");
    this.#window -= f.payload.length;
    if (this.#window < 0) throw new H2Error(ErrorCode.flowControl, "Connection receive window exceeded");
    return unpad(f);
  }

  /**
   * The stream's window must hold the frame too: false, after resetting the stream, if it did not.
   * Padding is consumed on arrival.
   */
  admit(stream: FlowStream, size: number, dataLength: number): boolean {
    stream.recvWindow -= size;
    if (stream.recvWindow < 0) {
      this.consumed(undefined, size);
      stream.reset(ErrorCode.flowControl);
      return false;
    }
    if (size > dataLength) this.consumed(stream, size - dataLength);
    return true;
  }

  /** Bytes consumed (or discarded); without a stream, or once it ended, only the connection's window. */
  consumed(stream: FlowStream | undefined, n: number): void {
    this.#unacked += n;
    if (this.#unacked >= this.connection / 2) {
      this.#windowUpdate(0, this.#unacked);
      this.#window += this.#unacked;
      this.#unacked = 0;
    }
    if (!stream || stream.remoteEnded || stream.closed) return;
    stream.recvUnacked += n;
    if (stream.recvUnacked >= this.stream / 2) {
      this.#windowUpdate(stream.id, stream.recvUnacked);
      stream.recvWindow += stream.recvUnacked;
      stream.recvUnacked = 0;
    }
  }

  #windowUpdate(streamId: number, increment: number): void {
    this.#out.writeFrame(FrameType.windowUpdate, 0, streamId, u32(increment & maxWindow));
  }
}

/** The increment a WINDOW_UPDATE carries. */
export function windowIncrement(f: Frame): number {
  if (f.payload.length !== 4) {
    throw new H2Error(ErrorCode.frameSize, "WINDOW_UPDATE payload is not 4 bytes");
  }
  return readUint32(f.payload, 0) & maxWindow;
}

/** A connection-level WINDOW_UPDATE: the streams that waited for the connection window go on. */
export function openConnectionWindow<S extends FlowStream>(
  connection: { sendWindow: number },
  increment: number,
  blocked: Set<S>,
): void {
  if (increment === 0) throw new H2Error(ErrorCode.protocol, "WINDOW_UPDATE of 0");
  connection.sendWindow += increment;
  if (connection.sendWindow > maxWindow) {
    throw new H2Error(ErrorCode.flowControl, "Connection window overflow");
  }
  const waiting = [...blocked];
  blocked.clear();
  for (const s of waiting) s.pump();
}

/** A stream-level WINDOW_UPDATE: a bad one resets only that stream (RFC 9113 §6.9, §6.9.1). */
export function openStreamWindow(stream: FlowStream, increment: number): void {
  if (increment === 0) return stream.reset(ErrorCode.protocol);
  stream.sendWindow += increment;
  if (stream.sendWindow > maxWindow) return stream.reset(ErrorCode.flowControl);
  stream.pump();
}

/**
 * SETTINGS_INITIAL_WINDOW_SIZE moves every open stream's send window by the change (RFC 9113 §6.9.2); a
 * window pushed past 2^31-1 is a connection error.
 */
export function changeInitialWindow(
  streams: Map<number, FlowStream>,
  change: { from: number; to: number },
): void {
  if (change.to > maxWindow) {
    throw new H2Error(ErrorCode.flowControl, "SETTINGS_INITIAL_WINDOW_SIZE too large");
  }
  const delta = change.to - change.from;
  for (const s of streams.values()) {
    s.sendWindow += delta;
    if (s.sendWindow > maxWindow) throw new H2Error(ErrorCode.flowControl, "Stream window overflow");
  }
  if (delta > 0) { for (const s of [...streams.values()]) s.pump(); }
}
