/**
 * The server side of one SPDY/3.1 session over an upgraded HTTP/1.1 connection, as
 * k8s.io/apimachinery's httpstream/spdy serves it: the client opens every stream (odd ids), the server
 * accepts or refuses each, answers PINGs, and ends with GOAWAY.
 *
 * Flow control: the peer of every Kubernetes SPDY session is github.com/moby/spdystream, which neither
 * sends WINDOW_UPDATE nor honours one (its frame handler has no case for them) and writes DATA frames of
 * any size; it relies on TCP back-pressure. So windows are kept in both directions and WINDOW_UPDATEs
 * are sent as the consumer reads, but this side only waits on its send window once the peer has shown
 * it does flow control (it sent a WINDOW_UPDATE or an initial window SETTING), or when told to: waiting
 * on a spdystream peer would stall every exec after 64 KiB. Memory is bounded instead by each stream's
 * buffer: when one is full, the connection stops reading until its consumer catches up.
 */

import { concatBytes } from "../../../../base/bytes.ts";
import {
  type ControlFrame,
  ControlType,
  defaultWindow,
  encodeData,
  encodeGoaway,
  encodePing,
  encodeRstStream,
  encodeSettings,
  encodeStreamHeaders,
  encodeWindowUpdate,
  Flag,
  FrameParser,
  GoawayStatus,
  maxStreamId,
  maxWindow,
  parseControl,
  type RawFrame,
  RstStatus,
  Setting,
  SpdySessionError,
  version,
} from "./frames.ts";
import {
  decodeHeaderBlock,
  encodeHeaderBlock,
  HeaderCompressor,
  HeaderDecompressor,
} from "./header_block.ts";
import { SpdyStream, type StreamHost } from "./stream.ts";

export interface SpdyLimits {
  /** Streams the peer may hold open at once; more are refused (RST_STREAM REFUSED_STREAM). */
  readonly maxStreams: number;
  /** A header block's size once inflated (a zip bomb ends the session here). */
  readonly maxHeaderBlockBytes: number;
  readonly maxHeaderPairs: number;
  /** A control frame's payload: a SYN_STREAM's compressed headers, mostly. */
  readonly maxControlFrameBytes: number;
  /** A DATA frame's payload. spdystream writes one frame per Write(): io.Copy's 32 KiB in practice. */
  readonly maxDataFrameBytes: number;
  /** Received bytes held per stream before reading pauses; also the initial window announced. */
  readonly streamBufferBytes: number;
  /** The session ends after this long without a frame either way (containerd: stream_idle_timeout). */
  readonly idleTimeoutMs: number;
  /** A write the peer does not take in this long ends the session: a peer that never reads. */
  readonly writeStallTimeoutMs: number;
  /** Control frames (PING replies, resets, window updates) queued unwritten; beyond, the session ends. */
  readonly maxQueuedControlBytes: number;
  /** How long a graceful close waits for queued frames to leave and for the peer to hang up. */
  readonly closeTimeoutMs: number;
}

export const defaultSpdyLimits: SpdyLimits = {
  maxStreams: 128,
  maxHeaderBlockBytes: 16 * 1024,
  maxHeaderPairs: 64,
  maxControlFrameBytes: 16 * 1024,
  maxDataFrameBytes: 1024 * 1024,
  streamBufferBytes: 256 * 1024,
  // containerd's default stream_idle_timeout.
  idleTimeoutMs: 4 * 60 * 60 * 1000,
  writeStallTimeoutMs: 60_000,
  maxQueuedControlBytes: 64 * 1024,
  closeTimeoutMs: 5_000,
};

/** What the session reads from and writes to: a TCP connection, after the HTTP upgrade. */
export type SpdyTransport = Pick<Deno.Conn, "read" | "write" | "closeWrite" | "close">;

export interface SpdyConnectionOptions {
  readonly limits?: Partial<SpdyLimits>;
  /**
   * Called for each stream the peer opens, with its headers: true accepts it (SYN_REPLY), false refuses
   * it (RST_STREAM REFUSED_STREAM). Called in the order the streams came.
   */
  readonly onStream: (stream: SpdyStream) => boolean;
  /** The peer sent GOAWAY: it opens no more streams. */
  readonly onGoaway?: () => void;
  /** Bytes that arrived with the HTTP request, after its head. */
  readonly initial?: Uint8Array;
  /** Wait on the peer's windows from the first byte, for peers known to send WINDOW_UPDATE. */
  readonly enforceSendWindow?: boolean;
}

/** The session window this side announces (SPDY/3.1 starts every session at 64 KiB). */
const sessionWindow = 1024 * 1024;
/** Outgoing DATA frames are cut at this size so that streams take turns. */
const maxSendFrame = 64 * 1024;
/** Frames queued within one write are joined up to this size. */
const maxWriteBatch = 256 * 1024;
const readBufferSize = 64 * 1024;

interface QueuedWrite {
  readonly bytes: Uint8Array;
  readonly control: boolean;
  readonly done?: PromiseWithResolvers<void>;
}

export class SpdyConnection implements StreamHost {
  readonly #conn: SpdyTransport;
  readonly #options: SpdyConnectionOptions;
  readonly #limits: SpdyLimits;
  readonly #parser: FrameParser;
  readonly #inflate: HeaderDecompressor;
  readonly #deflate = new HeaderCompressor();
  readonly #streams = new Map<number, SpdyStream>();
  readonly #ended = new AbortController();
  readonly #done = Promise.withResolvers<void>();
  #lastPeerStreamId = 0;
  #closing: Promise<void> | undefined;
  #goawaySent = false;
  #peerGoaway = false;
  #destroyed = false;
  // Writing.
  #queue: QueuedWrite[] = [];
  #queuedControlBytes = 0;
  #writing = false;
  #drainWaiters: (() => void)[] = [];
  // Flow control.
  #sendWindow = defaultWindow;
  #peerInitialWindow = defaultWindow;
  #enforceWindows: boolean;
  #windowWaiters: (() => void)[] = [];
  #sessionUnacked = 0;
  readonly #streamUnacked = new Map<number, number>();
  // Idleness.
  #lastActivity = Date.now();
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #readLoop: Promise<void> | undefined;

  constructor(conn: SpdyTransport, options: SpdyConnectionOptions) {
    this.#conn = conn;
    this.#options = options;
    const limits = this.#limits = { ...defaultSpdyLimits, ...options.limits };
    this.#enforceWindows = options.enforceSendWindow ?? false;
    this.#parser = new FrameParser({
      maxControlPayload: limits.maxControlFrameBytes,
      maxDataPayload: limits.maxDataFrameBytes,
    });
    this.#inflate = new HeaderDecompressor(limits.maxHeaderBlockBytes);
    this.#sendControl(encodeSettings([
      [Setting.maxConcurrentStreams, limits.maxStreams],
      [Setting.initialWindowSize, limits.streamBufferBytes],
    ]));
    this.#sendControl(encodeWindowUpdate(0, sessionWindow - defaultWindow));
    this.#armIdleTimer(limits.idleTimeoutMs);
    this.#readLoop = this.#read(options.initial ?? new Uint8Array(0));
  }

  /** Aborted when the session ends, for whatever reason (its `reason` says). */
  get signal(): AbortSignal {
    return this.#ended.signal;
  }

  /** Resolves when the session has ended and its socket is closed. */
  get closed(): Promise<void> {
    return this.#done.promise;
  }

  /** Streams open (not yet ended both ways or reset). */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Whether the peer sent GOAWAY. */
  get peerGoingAway(): boolean {
    return this.#peerGoaway;
  }

  /**
   * Ends the session gracefully: streams still open are reset, GOAWAY is sent, and the socket is closed
   * once the peer hangs up or `closeTimeoutMs` passed. Callers end their streams first (end()) for their
   * data to arrive whole.
   */
  close(): Promise<void> {
    return this.#closing ??= this.#closeGracefully();
  }

  /** Ends the session now. */
  destroy(reason = "Session closed"): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#ended.abort(new Error(reason));
    clearTimeout(this.#idleTimer);
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    for (const stream of [...this.#streams.values()]) stream.connectionEnded(reason);
    this.#streams.clear();
    const err = new Error(`Cannot write: ${reason}`);
    for (const w of this.#queue) w.done?.reject(err);
    this.#queue = [];
    this.#wake(this.#windowWaiters);
    this.#wake(this.#drainWaiters);
    this.#inflate.close();
    this.#deflate.close();
    (this.#readLoop ?? Promise.resolve()).finally(() => this.#done.resolve());
  }

  async #closeGracefully(): Promise<void> {
    const deadline = setTimeout(
      () => this.destroy("The peer did not hang up in time"),
      this.#limits.closeTimeoutMs,
    );
    try {
      for (const stream of [...this.#streams.values()]) stream.reset(RstStatus.cancel);
      this.#sendGoaway(GoawayStatus.ok);
      await this.#drained();
      if (!this.#destroyed) await this.#conn.closeWrite().catch(() => {});
      // The peer hangs up once it has read the GOAWAY; the read loop sees its end of file.
      await this.#readLoop;
    } finally {
      clearTimeout(deadline);
      this.destroy();
    }
    await this.#done.promise;
  }

  // --- StreamHost ---------------------------------------------------------------------------------

  async sendData(stream: SpdyStream, data: Uint8Array, fin: boolean): Promise<void> {
    let offset = 0;
    do {
      const n = await this.#allowance(stream, data.length - offset);
      const chunk = data.subarray(offset, offset + n);
      offset += n;
      stream.sendWindow -= n;
      this.#sendWindow -= n;
      await this.#send(encodeData(stream.id, chunk, { fin: fin && offset >= data.length }));
    } while (offset < data.length);
  }

  sendReset(stream: SpdyStream, status: number): void {
    this.#sendControl(encodeRstStream(stream.id, status));
  }

  consumed(stream: SpdyStream, n: number): void {
    if (this.#destroyed) return;
    this.#sessionConsumed(n);
    if (stream.remoteEnded || stream.failure) return;
    const unacked = (this.#streamUnacked.get(stream.id) ?? 0) + n;
    if (unacked >= this.#limits.streamBufferBytes / 2) {
      this.#sendControl(encodeWindowUpdate(stream.id, unacked));
      this.#streamUnacked.set(stream.id, 0);
    } else {
      this.#streamUnacked.set(stream.id, unacked);
    }
  }

  streamClosed(stream: SpdyStream): void {
    this.#streams.delete(stream.id);
    this.#streamUnacked.delete(stream.id);
  }

  // --- reading ------------------------------------------------------------------------------------

  async #read(initial: Uint8Array): Promise<void> {
    const buf = new Uint8Array(readBufferSize);
    try {
      if (initial.length > 0) await this.#frames(initial);
      while (!this.#destroyed) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        this.#lastActivity = Date.now();
        await this.#frames(buf.subarray(0, n));
      }
      if (!this.#destroyed) this.destroy("The peer closed the connection");
    } catch (err) {
      if (this.#destroyed) return;
      if (err instanceof SpdySessionError) {
        this.#sendGoaway(err.status);
        // The GOAWAY is worth a moment, not a wait on a peer that does not read.
        await Promise.race([this.#drained(), new Promise((r) => setTimeout(r, 100))]);
      }
      this.destroy(err instanceof Error ? err.message : String(err));
    }
  }

  async #frames(bytes: Uint8Array): Promise<void> {
    for (const frame of this.#parser.push(bytes)) {
      if (this.#destroyed) return;
      if (frame.control) await this.#control(frame);
      else await this.#data(frame);
    }
  }

  async #data(frame: RawFrame): Promise<void> {
    const stream = this.#streams.get(frame.streamId);
    if (!stream) {
      this.#sessionConsumed(frame.payload.length);
      // Data after a stream ended is expected (it crossed our reset); data for a stream never opened
      // is an error of the peer's.
      if (frame.streamId > this.#lastPeerStreamId) {
        this.#sendControl(encodeRstStream(frame.streamId, RstStatus.invalidStream));
      }
      return;
    }
    if (stream.remoteEnded) {
      this.#sessionConsumed(frame.payload.length);
      stream.reset(RstStatus.streamAlreadyClosed);
      return;
    }
    const full = stream.receive(frame.payload);
    if (frame.flags & Flag.fin) stream.remoteEnd();
    // Resolves once the consumer read enough, or the stream or the session ended.
    if (full) await full;
  }

  async #control(frame: RawFrame): Promise<void> {
    if (frame.version !== version) {
      throw new SpdySessionError(
        GoawayStatus.protocolError,
        `Control frame of SPDY version ${frame.version}: this side speaks ${version}`,
      );
    }
    const c = parseControl(frame);
    switch (c.type) {
      case ControlType.synStream:
        return await this.#synStream(c);
      case ControlType.synReply:
        await this.#inflate.decompress(c.block);
        throw new SpdySessionError(
          GoawayStatus.protocolError,
          `SYN_REPLY for stream ${c.streamId}: the server opens none`,
        );
      case ControlType.headers:
        // Inflated to keep the context in step; their content means nothing to remotecommand.
        await this.#inflate.decompress(c.block);
        if (c.flags & Flag.fin) this.#streams.get(c.streamId)?.remoteEnd();
        return;
      case ControlType.rstStream:
        this.#streams.get(c.streamId)?.resetByPeer(c.status);
        return;
      case ControlType.settings:
        for (const [id, value] of c.entries) if (id === Setting.initialWindowSize) this.#initialWindow(value);
        return;
      case ControlType.ping:
        // Odd ids are the client's; even ones would answer pings this side never sends.
        if (c.id % 2 === 1) this.#sendControl(encodePing(c.id));
        return;
      case ControlType.goaway:
        if (!this.#peerGoaway) {
          this.#peerGoaway = true;
          this.#options.onGoaway?.();
        }
        return;
      case ControlType.windowUpdate:
        this.#windowUpdate(c.streamId, c.delta);
        return;
      default:
        // Unknown control frames are ignored (§2.2.1).
        return;
    }
  }

  async #synStream(c: Extract<ControlFrame, { type: typeof ControlType.synStream }>): Promise<void> {
    // Inflated even when the stream is refused: the peer's compression context moved on.
    const headers = decodeHeaderBlock(await this.#inflate.decompress(c.block), this.#limits.maxHeaderPairs);
    if (c.streamId % 2 === 0 || c.streamId <= this.#lastPeerStreamId || c.streamId > maxStreamId) {
      throw new SpdySessionError(
        GoawayStatus.protocolError,
        `Stream ids must rise and be odd: SYN_STREAM for stream ${c.streamId} after ${this.#lastPeerStreamId}`,
      );
    }
    this.#lastPeerStreamId = c.streamId;
    // After GOAWAY new streams are ignored (SPDY/3.1 §2.6.6).
    if (this.#goawaySent || this.#destroyed) return;
    this.#openStream(c.streamId, headers, c.flags);
  }

  /** The peer's SETTINGS_INITIAL_WINDOW_SIZE: every stream's window moves by the change. */
  #initialWindow(value: number): void {
    if (value > maxWindow) {
      throw new SpdySessionError(
        GoawayStatus.protocolError,
        `Initial window of ${value} bytes exceeds ${maxWindow}`,
      );
    }
    const delta = value - this.#peerInitialWindow;
    this.#peerInitialWindow = value;
    for (const s of this.#streams.values()) s.sendWindow += delta;
    this.#enforceWindows = true;
    this.#wake(this.#windowWaiters);
  }

  #openStream(id: number, headers: Map<string, string[]>, flags: number): void {
    if (this.#streams.size >= this.#limits.maxStreams) {
      this.#sendControl(encodeRstStream(id, RstStatus.refusedStream));
      return;
    }
    const reply = Promise.withResolvers<void>();
    const stream = new SpdyStream(this, {
      id,
      headers,
      bufferBytes: this.#limits.streamBufferBytes,
      sendWindow: this.#peerInitialWindow,
      remoteEnded: (flags & Flag.fin) !== 0,
      localEnded: (flags & Flag.unidirectional) !== 0,
      replied: reply.promise,
    });
    reply.promise.catch(() => {});
    // In the map before the handler sees it: a handler may reset it at once.
    this.#streams.set(id, stream);
    let accepted = false;
    try {
      accepted = this.#options.onStream(stream);
    } catch {
      accepted = false;
    }
    if (!accepted) {
      this.#streams.delete(id);
      reply.reject(new Error(`Stream ${id} was refused`));
      this.#sendControl(encodeRstStream(id, RstStatus.refusedStream));
      return;
    }
    // Compressed in order (one context), written in order: SYN_REPLYs leave in stream order, each
    // before any data of its stream (the stream's writes wait on `reply`).
    this.#deflate.compress(encodeHeaderBlock([])).then(
      (block) => this.#send(encodeStreamHeaders(id, block)),
    ).then(reply.resolve, (err) => {
      reply.reject(err);
      this.destroy(`Cannot reply to stream ${id}: ${err instanceof Error ? err.message : err}`);
    });
  }

  #windowUpdate(streamId: number, delta: number): void {
    this.#enforceWindows = true;
    if (streamId === 0) {
      this.#sendWindow += delta;
      if (this.#sendWindow > maxWindow) {
        throw new SpdySessionError(GoawayStatus.protocolError, `Session window grown past ${maxWindow}`);
      }
    } else {
      const stream = this.#streams.get(streamId);
      if (!stream) return;
      stream.sendWindow += delta;
      if (stream.sendWindow > maxWindow) {
        stream.reset(RstStatus.flowControlError);
        return;
      }
    }
    this.#wake(this.#windowWaiters);
  }

  #sessionConsumed(n: number): void {
    this.#sessionUnacked += n;
    if (this.#sessionUnacked >= sessionWindow / 2) {
      this.#sendControl(encodeWindowUpdate(0, this.#sessionUnacked));
      this.#sessionUnacked = 0;
    }
  }

  // --- writing ------------------------------------------------------------------------------------

  /** How many of `wanted` bytes may go in the next frame; waits while a window this side honours is shut. */
  async #allowance(stream: SpdyStream, wanted: number): Promise<number> {
    const cap = Math.min(wanted, maxSendFrame);
    if (cap === 0) return 0;
    for (;;) {
      if (this.#destroyed) throw new Error("Cannot write: the session ended");
      if (stream.failure) throw stream.failure;
      if (!this.#enforceWindows) return cap;
      const open = Math.min(stream.sendWindow, this.#sendWindow);
      if (open > 0) return Math.min(cap, open);
      await new Promise<void>((resolve) => this.#windowWaiters.push(resolve));
    }
  }

  #sendGoaway(status: number): void {
    if (this.#goawaySent) return;
    this.#goawaySent = true;
    this.#sendControl(encodeGoaway(this.#lastPeerStreamId, status));
  }

  /** Queues a control frame; a peer that lets them pile up unread ends the session. */
  #sendControl(bytes: Uint8Array): void {
    if (this.#destroyed) return;
    this.#queuedControlBytes += bytes.length;
    if (this.#queuedControlBytes > this.#limits.maxQueuedControlBytes) {
      this.destroy(`The peer left ${this.#queuedControlBytes} bytes of control frames unread`);
      return;
    }
    this.#queue.push({ bytes, control: true });
    this.#pump();
  }

  /** Queues a frame; resolves once it is written. */
  #send(bytes: Uint8Array): Promise<void> {
    if (this.#destroyed) return Promise.reject(new Error("Cannot write: the session ended"));
    const done = Promise.withResolvers<void>();
    this.#queue.push({ bytes, control: false, done });
    this.#pump();
    return done.promise;
  }

  #pump(): void {
    if (this.#writing) return;
    this.#writing = true;
    void this.#writeQueued();
  }

  /**
   * Writes queued frames until the queue is empty. `#writing` is cleared in the same turn that finds
   * the queue empty (no await in between): a frame queued in any later turn starts a new pump. With an
   * await there, a frame queued in the gap waited for the next frame after it: an exec's status
   * arrived with the client's next PING, 5 s late.
   */
  async #writeQueued(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#destroyed) await this.#writeBatch();
    } finally {
      this.#writing = false;
    }
    this.#wake(this.#drainWaiters);
  }

  /** Writes the frames at the head of the queue, joined up to maxWriteBatch bytes. */
  async #writeBatch(): Promise<void> {
    const batch: QueuedWrite[] = [];
    let size = 0;
    while (
      this.#queue.length > 0 && (batch.length === 0 || size + this.#queue[0]!.bytes.length <= maxWriteBatch)
    ) {
      const w = this.#queue.shift()!;
      batch.push(w);
      size += w.bytes.length;
    }
    const bytes = batch.length === 1 ? batch[0]!.bytes : concatBytes(batch.map((w) => w.bytes), size);
    const stall = setTimeout(
      () => this.destroy(`The peer read nothing for ${this.#limits.writeStallTimeoutMs} ms`),
      this.#limits.writeStallTimeoutMs,
    );
    try {
      await writeAll(this.#conn, bytes);
    } catch (err) {
      for (const w of batch) w.done?.reject(err);
      this.destroy(`Cannot write to the peer: ${err instanceof Error ? err.message : err}`);
      return;
    } finally {
      clearTimeout(stall);
    }
    this.#lastActivity = Date.now();
    for (const w of batch) {
      if (w.control) this.#queuedControlBytes -= w.bytes.length;
      w.done?.resolve();
    }
  }

  #drained(): Promise<void> {
    if ((this.#queue.length === 0 && !this.#writing) || this.#destroyed) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  // --- misc ---------------------------------------------------------------------------------------

  #wake(waiters: (() => void)[]): void {
    const list = waiters.splice(0);
    for (const w of list) w();
  }

  #armIdleTimer(delay: number): void {
    this.#idleTimer = setTimeout(() => {
      const idle = Date.now() - this.#lastActivity;
      if (idle >= this.#limits.idleTimeoutMs) {
        this.destroy(`The session was idle for ${this.#limits.idleTimeoutMs} ms`);
      } else {
        this.#armIdleTimer(this.#limits.idleTimeoutMs - idle);
      }
    }, delay);
  }
}

async function writeAll(conn: SpdyTransport, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}
