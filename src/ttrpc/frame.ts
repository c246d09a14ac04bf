/**
 * ttrpc framing: a 10-byte header (data length u32 BE, stream id u32 BE, message type u8, flags u8)
 * followed by the data. Facts from containerd/ttrpc PROTOCOL.md and channel.go.
 */

export const HEADER_LENGTH = 10;
/** The largest data length a peer accepts; containerd's ttrpc rejects anything larger. */
export const MAX_MESSAGE_LENGTH = 4 << 20;

export const MessageType = { request: 1, response: 2, data: 3 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const Flags = {
  /** request/data: no more data expected from the sender */
  remoteClosed: 0x1,
  /** request: non-unary, the sender is still sending data */
  remoteOpen: 0x2,
  /** data: the frame carries no data (an empty data frame still counts as an empty message) */
  noData: 0x4,
} as const;

export interface FrameHeader {
  readonly length: number;
  readonly streamId: number;
  readonly type: number;
  readonly flags: number;
}

/**
 * A received frame. `data` is undefined when the frame was larger than MAX_MESSAGE_LENGTH: its bytes were
 * skipped so that the connection stays usable, and the receiver answers that stream with ResourceExhausted.
 */
export interface Frame extends FrameHeader {
  readonly data: Uint8Array<ArrayBuffer> | undefined;
}

export function encodeFrame(streamId: number, type: number, flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_LENGTH + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  view.setUint32(4, streamId);
  out[8] = type;
  out[9] = flags;
  out.set(data, HEADER_LENGTH);
  return out;
}

export function decodeHeader(bytes: Uint8Array): FrameHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_LENGTH);
  return { length: view.getUint32(0), streamId: view.getUint32(4), type: bytes[8]!, flags: bytes[9]! };
}

/** The byte stream a frame reader needs (a Deno.Conn satisfies it). */
export interface ByteReader {
  read(p: Uint8Array): Promise<number | null>;
}

/** The byte stream a frame writer needs (a Deno.Conn satisfies it). */
export interface ByteWriter {
  write(p: Uint8Array): Promise<number>;
}

/** Reads whole frames from a byte stream connection, buffering partial reads. */
export class FrameReader {
  readonly #conn: ByteReader;
  /**
   * Small, as Go's bufio.Reader (4 KiB) under containerd's: every connection holds one while it waits,
   * and 500 idle connections with 64 KiB each held a daemon 24 MiB above idle (issue 14's fuzz test).
   * Larger bodies are read straight into their own buffer.
   */
  readonly #buf = new Uint8Array(8 * 1024);
  #start = 0;
  #end = 0;

  constructor(conn: ByteReader) {
    this.#conn = conn;
  }

  /** The next frame, or null at a clean end of stream between frames. */
  async next(): Promise<Frame | null> {
    const head = new Uint8Array(HEADER_LENGTH);
    const got = await this.#readInto(head);
    if (got === 0) return null;
    if (got < HEADER_LENGTH) throw new Error("Cannot read ttrpc frame header: connection closed mid-frame");
    const header = decodeHeader(head);
    if (header.length > MAX_MESSAGE_LENGTH) {
      await this.#discard(header.length);
      return { ...header, data: undefined };
    }
    const data = new Uint8Array(header.length);
    if (await this.#readInto(data) < header.length) {
      throw new Error(`Cannot read ttrpc frame of stream ${header.streamId}: connection closed mid-frame`);
    }
    return { ...header, data };
  }

  /** Fills dst; returns how many bytes were read before end of stream. */
  async #readInto(dst: Uint8Array): Promise<number> {
    let off = 0;
    while (off < dst.length) {
      if (this.#start < this.#end) {
        const n = Math.min(this.#end - this.#start, dst.length - off);
        dst.set(this.#buf.subarray(this.#start, this.#start + n), off);
        this.#start += n;
        off += n;
        continue;
      }
      const remaining = dst.length - off;
      if (remaining >= this.#buf.length) {
        const n = await this.#conn.read(dst.subarray(off));
        if (n === null) return off;
        off += n;
        continue;
      }
      this.#start = 0;
      this.#end = 0;
      const n = await this.#conn.read(this.#buf);
      if (n === null) return off;
      this.#end = n;
    }
    return off;
  }

  async #discard(count: number): Promise<void> {
    let left = count;
    while (left > 0) {
      if (this.#start < this.#end) {
        const n = Math.min(this.#end - this.#start, left);
        this.#start += n;
        left -= n;
        continue;
      }
      this.#start = 0;
      const n = await this.#conn.read(this.#buf);
      if (n === null) throw new Error("Cannot skip oversized ttrpc frame: connection closed mid-frame");
      this.#end = n;
    }
  }
}

/** Serialises frame writes so that concurrent senders never interleave bytes on the socket. */
export class FrameWriter {
  readonly #conn: ByteWriter;
  #tail: Promise<void> = Promise.resolve();

  constructor(conn: ByteWriter) {
    this.#conn = conn;
  }

  write(streamId: number, type: number, flags: number, data: Uint8Array): Promise<void> {
    if (data.length > MAX_MESSAGE_LENGTH) {
      return Promise.reject(new RangeError(`Message length ${data.length} exceeds ${MAX_MESSAGE_LENGTH}`));
    }
    const frame = encodeFrame(streamId, type, flags, data);
    const next = this.#tail.then(() => writeAll(this.#conn, frame));
    // A failed write must not poison later writes' ordering; each caller sees its own outcome.
    this.#tail = next.catch(() => {});
    return next;
  }
}

async function writeAll(w: ByteWriter, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await w.write(bytes.subarray(off));
}
