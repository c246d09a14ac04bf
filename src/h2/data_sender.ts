/**
 * Sends a stream's body as DATA frames under flow control (RFC 9113 §6.9): each frame takes from the
 * stream's and the connection's send windows and fits the peer's frame size. A body is framed only while
 * the connection's writer has room, so a peer that does not read holds the senders back instead of
 * making us queue their bodies. Used by the server's response streams and the client's request streams.
 */

import { Flag, FrameType } from "./frames.ts";
import type { HeaderField } from "./hpack.ts";
import { maxDataFrameSize } from "./limits.ts";

/** What a DataSender needs from its connection. */
export interface SendHost<S> {
  /** Send window of the connection; DATA takes from it. */
  sendWindow: number;
  readonly peerMaxFrameSize: number;
  /** The writer's backlog is at its high-water mark: bodies wait. */
  readonly writerFull: boolean;
  writeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void;
  /** Asks to be pumped again when the connection window opens or the writer drains. */
  block(stream: S): void;
}

/** The stream whose body is sent. */
export interface SendingStream {
  readonly id: number;
  /** Peer's window for this stream. */
  sendWindow: number;
  readonly closed: boolean;
}

export interface DataSenderOptions {
  /** Frames the trailers that end the body (a HEADERS frame with END_STREAM). */
  sendTrailers?: (fields: HeaderField[]) => void;
  /** The end of the body has been framed. */
  onEnd: () => void;
}

/** One piece of the body; `end` marks the last, which may carry trailers instead of data. */
export interface Outgoing {
  data?: Uint8Array;
  trailers?: HeaderField[];
  end: boolean;
}

interface Queued extends Outgoing {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class DataSender<S extends SendingStream> {
  readonly #stream: S;
  readonly #host: SendHost<S>;
  readonly #options: DataSenderOptions;
  readonly #queue: Queued[] = [];

  constructor(stream: S, host: SendHost<S>, options: DataSenderOptions) {
    this.#stream = stream;
    this.#host = host;
    this.#options = options;
  }

  /** Nothing is waiting to be framed. */
  get empty(): boolean {
    return this.#queue.length === 0;
  }

  /** Queues a piece; resolves once it is framed, rejects if the stream dies first. */
  send(item: Outgoing): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ ...item, resolve, reject });
      this.pump();
    });
  }

  /** Frames what the windows and the writer allow; called again on WINDOW_UPDATE, SETTINGS and drain. */
  pump(): void {
    const host = this.#host;
    const stream = this.#stream;
    while (this.#queue.length > 0 && !stream.closed) {
      const item = this.#queue[0]!;
      const data = item.data;
      // END_STREAM rides on the last DATA frame unless trailers end the body.
      let endSent = false;
      if (data && data.length > 0) {
        if (host.writerFull) return host.block(stream);
        const n = Math.min(
          data.length,
          stream.sendWindow,
          host.sendWindow,
          host.peerMaxFrameSize,
          maxDataFrameSize,
        );
        if (n <= 0) {
          if (host.sendWindow <= 0) host.block(stream);
          return;
        }
        const last = n === data.length;
        endSent = last && item.end && !item.trailers;
        host.writeFrame(
          FrameType.data,
          endSent ? Flag.endStream : 0,
          stream.id,
          last ? data : data.subarray(0, n),
        );
        stream.sendWindow -= n;
        host.sendWindow -= n;
        item.data = data.subarray(n);
        if (!last) continue;
      }
      this.#queue.shift();
      item.resolve();
      if (item.end) {
        if (item.trailers) this.#options.sendTrailers?.(item.trailers);
        else if (!endSent) host.writeFrame(FrameType.data, Flag.endStream, stream.id);
        this.#options.onEnd();
      }
    }
  }

  /** Settles everything still queued: rejected with `err`, or resolved without it (the body is moot). */
  settle(err?: Error): void {
    for (const item of this.#queue.splice(0)) {
      if (err) item.reject(err);
      else item.resolve();
    }
  }
}
