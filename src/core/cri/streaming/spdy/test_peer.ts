/**
 * A SPDY client for tests, written on the same frame code: it opens streams, sends raw frames (valid or
 * not) and reads what the server answers, so that limits can be driven past what a real client does.
 */

import {
  type ControlFrame,
  ControlType,
  encodeData,
  encodeSynStream,
  FrameParser,
  parseControl,
  type RawFrame,
} from "./frames.ts";
import {
  decodeHeaderBlock,
  encodeHeaderBlock,
  HeaderCompressor,
  HeaderDecompressor,
} from "./header_block.ts";

export type PeerFrame =
  | { readonly kind: "control"; readonly frame: ControlFrame; readonly headers?: Map<string, string[]> }
  | { readonly kind: "data"; readonly streamId: number; readonly fin: boolean; readonly data: Uint8Array };

export class TestPeer {
  readonly conn: Deno.Conn;
  readonly #deflate = new HeaderCompressor();
  readonly #inflate = new HeaderDecompressor(1 << 20);
  readonly #parser = new FrameParser({ maxControlPayload: 1 << 24, maxDataPayload: 1 << 24 });
  readonly #frames: PeerFrame[] = [];
  #waiter: (() => void) | undefined;
  #eof = false;
  #reading = false;
  readonly #initial: Uint8Array;
  readonly #readLoop: Promise<void>;

  /**
   * `read: false` leaves the socket unread until `startReading()`: a peer that does not read.
   * `initial`: bytes already read from the socket (past an HTTP response head).
   */
  constructor(conn: Deno.Conn, options: { read?: boolean; initial?: Uint8Array } = {}) {
    this.conn = conn;
    this.#initial = options.initial ?? new Uint8Array(0);
    this.#readLoop = options.read === false ? Promise.resolve() : this.#read();
  }

  static async connect(port: number, options: { read?: boolean } = {}): Promise<TestPeer> {
    return new TestPeer(await Deno.connect({ hostname: "127.0.0.1", port }), options);
  }

  get eof(): boolean {
    return this.#eof;
  }

  startReading(): Promise<void> {
    return this.#reading ? this.#readLoop : this.#read();
  }

  async synStream(id: number, headers: Record<string, string>, flags = 0): Promise<void> {
    const block = await this.#deflate.compress(encodeHeaderBlock(Object.entries(headers)));
    await this.write(encodeSynStream({ streamId: id, flags, block }));
  }

  async data(id: number, data: Uint8Array | string, fin = false): Promise<void> {
    await this.write(
      encodeData(id, typeof data === "string" ? new TextEncoder().encode(data) : data, { fin }),
    );
  }

  async write(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
  }

  /** The next frame; fails after `timeoutMs`, or at end of file. */
  next(timeoutMs = 5000): Promise<PeerFrame> {
    return this.until(() => true, timeoutMs);
  }

  /** The first frame that matches, taken out; frames before it stay for later calls. */
  async until(match: (f: PeerFrame) => boolean, timeoutMs = 5000): Promise<PeerFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#frames.findIndex(match);
      if (i >= 0) return this.#frames.splice(i, 1)[0]!;
      if (this.#eof) throw new Error("The server closed the connection");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`No frame within ${timeoutMs} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** The data of a stream up to its FIN; other frames stay. */
  async readStream(id: number, timeoutMs = 5000): Promise<Uint8Array> {
    const parts: number[] = [];
    for (;;) {
      const f = await this.until((f) => f.kind === "data" && f.streamId === id, timeoutMs);
      if (f.kind !== "data") continue;
      parts.push(...f.data);
      if (f.fin) return new Uint8Array(parts);
    }
  }

  /** Waits for the server to close the connection; the frames before are returned. */
  async closed(timeoutMs = 5000): Promise<PeerFrame[]> {
    const seen: PeerFrame[] = [];
    for (;;) {
      try {
        seen.push(await this.next(timeoutMs));
      } catch (err) {
        if (this.#eof) return seen;
        throw err;
      }
    }
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch { /* closed */ }
    await this.#readLoop;
    this.#deflate.close();
    this.#inflate.close();
  }

  async #read(): Promise<void> {
    this.#reading = true;
    const buf = new Uint8Array(64 * 1024);
    try {
      for (const raw of this.#parser.push(this.#initial)) this.#frames.push(await this.#decode(raw));
      for (;;) {
        const n = await this.conn.read(buf);
        if (n === null) break;
        for (const raw of this.#parser.push(buf.subarray(0, n))) this.#frames.push(await this.#decode(raw));
        this.#wake();
      }
    } catch {
      /* closed or reset */
    }
    this.#eof = true;
    this.#wake();
  }

  async #decode(raw: RawFrame): Promise<PeerFrame> {
    if (!raw.control) {
      return { kind: "data", streamId: raw.streamId, fin: (raw.flags & 1) !== 0, data: raw.payload };
    }
    const frame = parseControl(raw);
    if (frame.type === ControlType.synReply || frame.type === ControlType.headers) {
      return {
        kind: "control",
        frame,
        headers: decodeHeaderBlock(await this.#inflate.decompress(frame.block), 64),
      };
    }
    return { kind: "control", frame };
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }
}

/** Whether `f` is a control frame of `type` (for stream `id`, when given). */
export function isControl(f: PeerFrame, type: number, id?: number): boolean {
  if (f.kind !== "control" || f.frame.type !== type) return false;
  return id === undefined || ("streamId" in f.frame && f.frame.streamId === id);
}
