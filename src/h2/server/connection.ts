/**
 * The server end of one HTTP/2 connection over a server socket: the client's preface, new streams from
 * its header blocks (checked against the concurrent-stream limit and RFC 9113 §8), and a handler per
 * stream, started only while fewer than the limit still run.
 */

import type { ServerSocket } from "./conn_socket.ts";
import { ErrorCode, Flag, H2Error, preface, Setting } from "../frames.ts";
import type { HeaderBlock } from "../header_block.ts";
import { H2Connection, type H2ConnectionOptions } from "../connection.ts";
import { busyWindowMs, defaultMaxConcurrentStreams, maxBusyMs, maxUnstartedFactor } from "../limits.ts";
import { H2ServerStream } from "./stream.ts";
import { socketSink } from "./socket_sink.ts";

export interface H2ServerOptions extends H2ConnectionOptions {
  /**
   * Called once per request stream, when its headers are complete. A promise returned means the handler
   * runs until it settles: a stream the client reset meanwhile still counts against the handler limit.
   */
  onStream: (stream: H2ServerStream) => void | Promise<unknown>;
  onClose?: () => void;
  maxConcurrentStreams?: number;
}

export class H2ServerConnection extends H2Connection<H2ServerStream> {
  readonly #socket: ServerSocket;
  readonly #options: H2ServerOptions;
  readonly #maxStreams: number;
  #prefaceLeft = preface.length;
  /** Time spent handling this connection's frames in the window that began at #windowStart; when the current handling began. */
  #busyMs = 0;
  #windowStart = 0;
  #workStart = 0;
  #restTimer: ReturnType<typeof setTimeout> | undefined;
  /** Handlers running, and streams waiting for one to finish. */
  #running = 0;
  readonly #unstarted: H2ServerStream[] = [];

  constructor(socket: ServerSocket, options: H2ServerOptions) {
    super(socketSink(socket), { side: "server", peer: "client", parity: 0 }, options);
    this.#socket = socket;
    this.#options = options;
    this.#maxStreams = options.maxConcurrentStreams ?? defaultMaxConcurrentStreams;
    socket.on("data", (chunk: Uint8Array) => this.receive(chunk));
    socket.on("error", () => {});
    socket.on("end", () => this.destroy());
    socket.on("close", () => this.transportClosed());
    this.sendSettings([[Setting.maxConcurrentStreams, this.#maxStreams]]);
  }

  /** Bytes read from the socket (the first chunk is handed in by whoever sniffed the protocol). */
  override receive(chunk: Uint8Array): boolean {
    if (this.isClosed) return true;
    if (this.#prefaceLeft > 0) {
      const n = Math.min(this.#prefaceLeft, chunk.length);
      const at = preface.length - this.#prefaceLeft;
      for (let i = 0; i < n; i++) {
        if (chunk[i] !== preface[at + i]) {
          this.connectionError(new H2Error(ErrorCode.protocol, "Invalid connection preface"));
          return true;
        }
      }
      this.#prefaceLeft -= n;
      chunk = chunk.subarray(n);
      if (chunk.length === 0) return true;
    }
    return this.#charge(() => super.receive(chunk));
  }

  /**
   * Runs frame handling and charges its time to this connection: past maxBusyMs within busyWindowMs,
   * reading rests. A client that waits for its answers never gets near it; a flood does at once.
   */
  #charge(work: () => boolean): boolean {
    this.#workStart = performance.now();
    if (this.#workStart - this.#windowStart > busyWindowMs) {
      this.#windowStart = this.#workStart;
      this.#busyMs = 0;
    }
    const done = work();
    if (done) {
      this.#busyMs += performance.now() - this.#workStart;
      if (this.#busyMs > maxBusyMs) this.#rest(undefined);
    }
    return done;
  }

  protected override yieldTurn(rest: () => boolean): boolean {
    if (this.#busyMs + performance.now() - this.#workStart <= maxBusyMs) return false;
    this.#rest(rest);
    return true;
  }

  /**
   * Stops reading for a timer tick, in which the runtime goes idle and polls the other sockets; then
   * handles the frames this connection has left (`rest`) and reads on.
   */
  #rest(rest: (() => boolean) | undefined): void {
    this.#busyMs = 0;
    this.#windowStart = performance.now();
    if (this.isClosed) return;
    this.#socket.pause();
    this.#restTimer = setTimeout(() => {
      this.#restTimer = undefined;
      if (rest && !this.#charge(rest)) return;
      // Unless handling `rest` used up the budget again, and rests once more.
      if (!this.isClosed && this.#restTimer === undefined) this.#socket.resume();
    }, 1);
  }

  /** A complete header block on a stream that is not open: a new request. */
  protected headersOnNewStream(block: HeaderBlock): void {
    const id = block.streamId;
    if (id % 2 === 0 || id <= this.lastPeerStreamId) {
      throw new H2Error(ErrorCode.protocol, `Stream id ${id} is not a new client stream`);
    }
    this.lastPeerStreamId = id;
    if (this.goingAway || this.streams.size >= this.#maxStreams) {
      return this.resetStream(id, ErrorCode.refusedStream);
    }
    const problem = this.headerProblem(block, "request");
    if (problem) return this.resetStream(id, problem.code);
    const stream = new H2ServerStream(this, id, block.fields, {
      send: this.peerInitialWindow,
      recv: this.recv.stream,
    });
    this.streams.set(id, stream);
    if (block.flags & Flag.endStream) stream.receiveEnd();
    this.#start(stream);
  }

  protected peerGoingAway(): void {
    // Which streams the client processed does not matter to a server: it never retries. The client opens
    // no more streams; those open finish, then the connection closes.
  }

  protected override connectionClosed(): void {
    clearTimeout(this.#restTimer);
    this.#unstarted.length = 0;
    this.#options.onClose?.();
  }

  /**
   * Runs the stream's handler, or queues it while as many handlers run as streams may be open: handlers of
   * streams the client reset may still run, and a client that resets faster than they finish (rapid reset)
   * is told to calm down.
   */
  #start(stream: H2ServerStream): void {
    if (this.#running < this.#maxStreams) return this.#run(stream);
    if (this.#unstarted.length >= maxUnstartedFactor * this.#maxStreams) {
      throw new H2Error(
        ErrorCode.enhanceYourCalm,
        `${this.#unstarted.length} streams wait for handlers of streams the client reset`,
      );
    }
    this.#unstarted.push(stream);
  }

  /**
   * Starts the handler once the frames read with the stream's headers are handled: a stream the client
   * reset in the same breath (a rapid reset, or a call cancelled at once) never needs one.
   */
  #run(stream: H2ServerStream): void {
    this.#running++;
    queueMicrotask(() => {
      const running = stream.closed ? undefined : this.#options.onStream(stream);
      if (running) running.then(() => this.#handlerDone(), () => this.#handlerDone());
      else this.#handlerDone();
    });
  }

  #handlerDone(): void {
    this.#running--;
    for (let next = this.#unstarted.shift(); next; next = this.#unstarted.shift()) {
      // A stream reset while it waited needs no handler.
      if (!next.closed) return this.#run(next);
    }
  }
}
