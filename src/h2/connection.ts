/**
 * What an HTTP/2 connection is on either end (RFC 9113): frames in through the parser and out through
 * the writer, SETTINGS, PING, GOAWAY, RST_STREAM, WINDOW_UPDATE and PRIORITY, header blocks through
 * HPACK, DATA under flow control, the streams' bookkeeping, connection errors and closing. The server
 * (./server) and the client (./client) add what only their role does: who opens streams, the preface,
 * and what a new header block means.
 */

import {
  defaultMaxFrameSize,
  defaultWindow,
  ErrorCode,
  errorName,
  Flag,
  type Frame,
  FrameParser,
  FrameType,
  goawayPayload,
  H2Error,
  Setting,
  settingsPayload,
  u32,
} from "./frames.ts";
import type { HeaderField } from "./hpack.ts";
import { type HeaderBlock, HeaderBlockReader, writeHeaderBlock } from "./header_block.ts";
import { type HeaderListKind, malformed } from "./header_fields.ts";
import {
  answerPing,
  checkMaxFrameSize,
  priorityWellFormed,
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
import { type ByteSink, FrameWriter } from "./frame_writer.ts";
import { defaultMaxHeaderListSize } from "./limits.ts";
import { type H2Stream, H2StreamError, type StreamHost } from "./stream.ts";

/** How often (in frames) a connection asks whether it has used up its time (see yieldTurn). */
const framesPerBudgetCheck = 64;

export interface H2ConnectionOptions {
  /** Our per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE). */
  streamWindow?: number;
  /** Our connection receive window. */
  connectionWindow?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: advertised, and enforced on every decoded header block. */
  maxHeaderListSize?: number;
  /** Told about what ends the connection abnormally: protocol errors, a peer that does not read. */
  onError?: (err: Error) => void;
}

/** Which end a connection is: who opens streams on which ids, and how messages name the two ends. */
export interface Role {
  readonly side: "client" | "server";
  readonly peer: "client" | "server";
  /** Parity of the stream ids this end opens (1: odd, the client's; 0: even, the server's). */
  readonly parity: 0 | 1;
}

export abstract class H2Connection<S extends H2Stream> implements StreamHost {
  sendWindow = defaultWindow;
  peerMaxFrameSize = defaultMaxFrameSize;
  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS. */
  protected peerMaxStreams = Infinity;
  protected peerInitialWindow = defaultWindow;
  protected readonly streams = new Map<number, S>();
  protected readonly recv: ReceiveWindows;
  protected readonly writer: FrameWriter;
  /** The highest stream id the peer opened: GOAWAY's last stream id. */
  protected lastPeerStreamId = 0;
  /** The id our next stream gets. */
  protected nextStreamId: number;
  protected goingAway = false;
  readonly #role: Role;
  readonly #options: H2ConnectionOptions;
  readonly #parser = new FrameParser();
  readonly #headerBlocks: HeaderBlockReader;
  readonly #maxHeaderListSize: number;
  readonly #blocked = new Set<H2Stream>();
  #settingsSeen = false;
  #closed = false;

  constructor(sink: ByteSink, role: Role, options: H2ConnectionOptions) {
    this.#role = role;
    this.#options = options;
    this.nextStreamId = role.parity === 1 ? 1 : 2;
    this.#maxHeaderListSize = options.maxHeaderListSize ?? defaultMaxHeaderListSize;
    this.#headerBlocks = new HeaderBlockReader(this.#maxHeaderListSize);
    this.writer = new FrameWriter(sink, {
      overflow: (reason) => this.#overflow(reason),
      drain: () => this.#pumpBlocked(),
      failed: () => this.destroy(),
    });
    this.recv = new ReceiveWindows(this, {
      stream: options.streamWindow,
      connection: options.connectionWindow,
    });
  }

  get side(): string {
    return this.#role.side;
  }

  /** Streams still open. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** The streams still open, for a look at what is in flight (nothing is copied). */
  openStreams(): IterableIterator<S> {
    return this.streams.values();
  }

  /** True once the connection no longer reads or writes frames. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Sends our SETTINGS (these plus the header list size and our window) and opens our connection window. */
  protected sendSettings(settings: [id: number, value: number][]): void {
    this.writeFrame(
      FrameType.settings,
      0,
      0,
      settingsPayload([
        ...settings,
        [Setting.initialWindowSize, this.recv.stream],
        [Setting.maxHeaderListSize, this.#maxHeaderListSize],
      ]),
    );
    this.recv.announce();
  }

  /** Bytes from the transport; false if some of its frames wait for a later turn (see yieldTurn). */
  receive(chunk: Uint8Array): boolean {
    if (this.#closed) return true;
    let frames: Frame[];
    try {
      frames = this.#parser.push(chunk);
    } catch (err) {
      this.connectionError(err);
      return true;
    }
    return this.#handle(frames, 0);
  }

  /** Handles frames from `from` on; false if it left the rest for a later turn. */
  #handle(frames: Frame[], from: number): boolean {
    for (let i = from; i < frames.length; i++) {
      try {
        this.#frame(frames[i]!);
      } catch (err) {
        this.connectionError(err);
        return true;
      }
      if (this.#closed) return true;
      if ((i - from) % framesPerBudgetCheck === framesPerBudgetCheck - 1 && i + 1 < frames.length) {
        if (this.yieldTurn(() => this.#handle(frames, i + 1))) return false;
      }
    }
    return true;
  }

  /**
   * Hook, asked every few frames: whether to stop reading and run `rest` in a later turn of the event
   * loop (reading on once it returns true), so that a peer flooding small frames cannot keep other
   * connections waiting. The client reads only its own connection and never yields.
   */
  protected yieldTurn(_rest: () => boolean): boolean {
    return false;
  }

  /** Graceful close: GOAWAY, no new streams; the transport closes when the open ones finish. */
  close(): void {
    if (this.#closed) return;
    if (!this.goingAway) {
      this.goingAway = true;
      this.writer.pushFrame(FrameType.goaway, 0, 0, goawayPayload(this.lastPeerStreamId, ErrorCode.noError));
      this.goingAwayNow();
    }
    this.endIfIdle();
  }

  /** Ends every stream and the transport now, dropping what is queued. */
  destroy(): void {
    this.#shutDown(new H2StreamError(ErrorCode.cancel, "HTTP/2 connection closed", "closed"));
    this.writer.destroy();
  }

  /** From the transport: it has closed. */
  protected transportClosed(): void {
    this.#shutDown(new H2StreamError(ErrorCode.cancel, "HTTP/2 connection closed", "closed"));
    this.writer.dispose();
  }

  // --- StreamHost ---------------------------------------------------------------------------------

  writeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void {
    this.writer.pushFrame(type, flags, streamId, payload);
  }

  writeHeaders(streamId: number, fields: HeaderField[], endStream: boolean): void {
    writeHeaderBlock(this, streamId, { fields, endStream, maxFrameSize: this.peerMaxFrameSize });
  }

  get writerFull(): boolean {
    return this.writer.full;
  }

  block(stream: H2Stream): void {
    this.#blocked.add(stream);
  }

  consumed(stream: H2Stream | undefined, n: number): void {
    if (this.#closed) return;
    this.recv.consumed(stream, n);
  }

  closed(stream: H2Stream): void {
    this.streams.delete(stream.id);
    this.#blocked.delete(stream);
    this.streamClosed();
    this.endIfIdle();
  }

  // --- what each role adds ------------------------------------------------------------------------

  /** A complete header block on a stream that is not open: a new stream on the server. */
  protected abstract headersOnNewStream(block: HeaderBlock): void;

  /** The peer's GOAWAY (already marked as going away). */
  protected abstract peerGoingAway(lastStreamId: number, code: number): void;

  /** Hook: no new streams from now on (our GOAWAY, the peer's, or the connection ended). */
  protected goingAwayNow(): void {}

  /** Hook: a stream closed. */
  protected streamClosed(): void {}

  /** Hook: the peer's SETTINGS_MAX_CONCURRENT_STREAMS changed. */
  protected peerMaxStreamsChanged(): void {}

  /** Hook: the connection has closed (once). */
  protected connectionClosed(): void {}

  // --- frames -------------------------------------------------------------------------------------

  #frame(f: Frame): void {
    this.#headerBlocks.check(f);
    // Each end's preface closes with SETTINGS (RFC 9113 §3.4).
    if (!this.#settingsSeen && (f.type !== FrameType.settings || f.flags & Flag.ack)) {
      throw new H2Error(ErrorCode.protocol, `The ${this.#role.peer}'s first frame is not SETTINGS`);
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
      case FrameType.goaway: {
        const { lastStreamId, code } = readGoaway(f);
        this.goingAway = true;
        this.goingAwayNow();
        this.peerGoingAway(lastStreamId, code);
        return this.endIfIdle();
      }
      case FrameType.rstStream: {
        const code = rstStreamCode(f);
        this.#idleCheck(f.streamId);
        this.streams.get(f.streamId)?.abort(
          new H2StreamError(code, `Stream reset by the ${this.#role.peer} (${errorName(code)})`),
        );
        return;
      }
      case FrameType.windowUpdate:
        return this.#windowUpdate(f);
      case FrameType.priority:
        if (!priorityWellFormed(f)) this.#resetUnopened(f.streamId, ErrorCode.frameSize);
        return;
      case FrameType.pushPromise:
        // Neither end enables push: the client says so in its SETTINGS, a server may never receive it.
        throw new H2Error(ErrorCode.protocol, `PUSH_PROMISE from the ${this.#role.peer}`);
      default:
        return; // Unknown frame types are ignored (RFC 9113 §4.1).
    }
  }

  #settings(f: Frame): void {
    const entries = settingsEntries(f);
    if (!entries) return;
    this.#settingsSeen = true;
    for (const [id, value] of entries) {
      if (id === Setting.initialWindowSize) {
        const from = this.peerInitialWindow;
        this.peerInitialWindow = value;
        changeInitialWindow(this.streams, { from, to: value });
      } else if (id === Setting.maxFrameSize) {
        this.peerMaxFrameSize = checkMaxFrameSize(value);
      } else if (id === Setting.maxConcurrentStreams) {
        this.peerMaxStreams = value;
        this.peerMaxStreamsChanged();
      } else if (id === Setting.enablePush && (value > 1 || (value === 1 && this.#role.side === "client"))) {
        throw new H2Error(ErrorCode.protocol, `SETTINGS_ENABLE_PUSH ${value} from the ${this.#role.peer}`);
      }
    }
    this.writeFrame(FrameType.settings, Flag.ack, 0);
  }

  /**
   * A complete header block: for an open stream its next headers (a response, or trailers), else what
   * the role makes of it. A list over our limit or malformed is a stream error (RFC 9113 §8.1.1).
   */
  #headerBlock(block: HeaderBlock | undefined): void {
    if (!block) return;
    const stream = this.streams.get(block.streamId);
    if (!stream) return this.headersOnNewStream(block);
    if (stream.remoteEnded) return stream.reset(ErrorCode.streamClosed);
    const problem = this.headerProblem(block, stream.expectedHeaders);
    if (problem) return stream.reset(problem.code, problem.message);
    stream.receiveHeaders(block.fields, (block.flags & Flag.endStream) !== 0);
  }

  /** Why a header block is refused as `kind`: RST_STREAM's code and a message. */
  protected headerProblem(
    block: HeaderBlock,
    kind: HeaderListKind,
  ): { code: number; message: string } | undefined {
    if (block.truncated) {
      // grpc-go (and so containerd) answers FRAME_SIZE_ERROR.
      return {
        code: ErrorCode.frameSize,
        message: `Header list of stream ${block.streamId} exceeds ${this.#maxHeaderListSize} bytes`,
      };
    }
    const why = malformed(block.fields, kind);
    return why
      ? { code: ErrorCode.protocol, message: `Malformed ${kind} on stream ${block.streamId}: ${why}` }
      : undefined;
  }

  #data(f: Frame): void {
    const data = this.recv.takeData(f);
    const size = f.payload.length;
    const stream = this.streams.get(f.streamId);
    if (!stream || stream.remoteEnded) {
      // A stream we reset may still have DATA in flight: it counts against the connection window only.
      this.#idleCheck(f.streamId);
      this.consumed(undefined, size);
      stream?.reset(ErrorCode.streamClosed);
      return;
    }
    if (this.recv.admit(stream, size, data.length)) {
      stream.receiveData(data, (f.flags & Flag.endStream) !== 0);
    }
  }

  #windowUpdate(f: Frame): void {
    const increment = windowIncrement(f);
    if (f.streamId === 0) return openConnectionWindow(this, increment, this.#blocked);
    this.#idleCheck(f.streamId);
    const stream = this.streams.get(f.streamId);
    if (stream) openStreamWindow(stream, increment);
  }

  /** Whether `id` names a stream nobody opened yet (RFC 9113 §5.1: "idle"). */
  protected isIdle(id: number): boolean {
    return id % 2 === this.#role.parity ? id >= this.nextStreamId : id > this.lastPeerStreamId;
  }

  /** Frames other than HEADERS and PRIORITY on an idle stream are a connection error. */
  #idleCheck(id: number): void {
    if (this.isIdle(id)) throw new H2Error(ErrorCode.protocol, `Frame on idle stream ${id}`);
  }

  /** RST_STREAM for a stream that may have no object (refused, malformed, a bad PRIORITY). */
  protected resetStream(id: number, code: number): void {
    this.writeFrame(FrameType.rstStream, 0, id, u32(code));
  }

  #resetUnopened(id: number, code: number): void {
    const stream = this.streams.get(id);
    if (stream) stream.reset(code);
    else this.resetStream(id, code);
  }

  // --- ending -------------------------------------------------------------------------------------

  /** A connection error: GOAWAY with its code, every stream fails, the transport closes. */
  protected connectionError(err: unknown): void {
    if (this.#closed) return;
    const e = err instanceof Error ? err : new Error(String(err));
    this.#options.onError?.(e);
    const code = err instanceof H2Error ? err.code : ErrorCode.internal;
    this.writer.pushFrame(FrameType.goaway, 0, 0, goawayPayload(this.lastPeerStreamId, code, e.message));
    this.#shutDown(new H2StreamError(code, `HTTP/2 connection failed: ${e.message}`, "closed"));
    this.writer.close();
  }

  protected endIfIdle(): void {
    if (this.goingAway && this.streams.size === 0 && !this.#closed) {
      this.#shutDown(new H2StreamError(ErrorCode.cancel, "HTTP/2 connection closed", "closed"));
      this.writer.close();
    }
  }

  /** The peer does not read: nothing we send can reach it, so the connection just ends. */
  #overflow(reason: string): void {
    this.#options.onError?.(
      new H2Error(ErrorCode.enhanceYourCalm, `HTTP/2 connection to the ${this.#role.peer} closed: ${reason}`),
    );
    this.#shutDown(
      new H2StreamError(ErrorCode.enhanceYourCalm, `HTTP/2 connection closed: ${reason}`, "closed"),
    );
  }

  #pumpBlocked(): void {
    const waiting = [...this.#blocked];
    this.#blocked.clear();
    for (const s of waiting) s.pump();
  }

  #shutDown(err: H2StreamError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.goingAway = true;
    for (const s of [...this.streams.values()]) s.abort(err);
    this.streams.clear();
    this.#blocked.clear();
    this.goingAwayNow();
    this.connectionClosed();
  }
}
