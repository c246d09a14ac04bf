/**
 * SPDY/3.1 frame layout (draft 3.1 §2.2, §2.6): control and data frames, their flags and status codes,
 * encoders for each, and a streaming parser that holds the frame size limits. Header blocks stay
 * compressed here; header_block.ts owns the zlib contexts.
 */

export const version = 3;

/** Control frame types. CREDENTIAL (10) was dropped in 3.1; like any unknown type it is skipped. */
export const ControlType = {
  synStream: 1,
  synReply: 2,
  rstStream: 3,
  settings: 4,
  ping: 6,
  goaway: 7,
  headers: 8,
  windowUpdate: 9,
} as const;

export const Flag = {
  fin: 0x01,
  /** SYN_STREAM only: the sender will not receive on this stream. */
  unidirectional: 0x02,
} as const;

export const RstStatus = {
  protocolError: 1,
  invalidStream: 2,
  refusedStream: 3,
  unsupportedVersion: 4,
  cancel: 5,
  internalError: 6,
  flowControlError: 7,
  streamInUse: 8,
  streamAlreadyClosed: 9,
  frameTooLarge: 11,
} as const;

export const GoawayStatus = { ok: 0, protocolError: 1, internalError: 2 } as const;

export const Setting = { maxConcurrentStreams: 4, initialWindowSize: 7 } as const;

export const frameHeaderSize = 8;
/** The length field is 24 bits. */
export const maxFrameLength = 0xffffff;
export const maxStreamId = 0x7fffffff;
/** The initial stream and session windows of SPDY/3.1 (§2.6.8, §2.6.9). */
export const defaultWindow = 65536;
export const maxWindow = 0x7fffffff;

/** A frame as it left the wire: for control frames `type` is set and `streamId` is 0. */
export interface RawFrame {
  readonly control: boolean;
  readonly type: number;
  readonly flags: number;
  /** Data frames' stream; 0 for control frames, whose payload carries it. */
  readonly streamId: number;
  readonly version: number;
  readonly payload: Uint8Array;
}

/** A session error: the connection ends with GOAWAY carrying `status`. */
export class SpdySessionError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "SpdySessionError";
  }
}

export interface FrameLimits {
  /** Largest control frame payload accepted (a SYN_STREAM's compressed header block, mostly). */
  readonly maxControlPayload: number;
  /** Largest data frame payload accepted. */
  readonly maxDataPayload: number;
}

/**
 * Splits bytes into frames. A frame announcing a length above the limits ends the session before its
 * payload is buffered: no peer makes this side hold more than one frame of the allowed size.
 */
export class FrameParser {
  readonly #limits: FrameLimits;
  #buf = new Uint8Array(0);
  #start = 0;
  #end = 0;

  constructor(limits: FrameLimits) {
    this.#limits = limits;
  }

  /** Bytes held that do not yet make a whole frame. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  push(chunk: Uint8Array): RawFrame[] {
    this.#append(chunk);
    const frames: RawFrame[] = [];
    for (;;) {
      const avail = this.#end - this.#start;
      if (avail < frameHeaderSize) break;
      const b = this.#buf;
      const s = this.#start;
      const control = (b[s]! & 0x80) !== 0;
      const flags = b[s + 4]!;
      const length = (b[s + 5]! << 16) | (b[s + 6]! << 8) | b[s + 7]!;
      const limit = control ? this.#limits.maxControlPayload : this.#limits.maxDataPayload;
      if (length > limit) {
        throw new SpdySessionError(
          GoawayStatus.protocolError,
          `${control ? "Control" : "Data"} frame of ${length} bytes exceeds the limit of ${limit}`,
        );
      }
      if (avail < frameHeaderSize + length) break;
      const payload = b.slice(s + frameHeaderSize, s + frameHeaderSize + length);
      if (control) {
        frames.push({
          control,
          version: ((b[s]! & 0x7f) << 8) | b[s + 1]!,
          type: (b[s + 2]! << 8) | b[s + 3]!,
          flags,
          streamId: 0,
          payload,
        });
      } else {
        const streamId = ((b[s]! & 0x7f) << 24 | b[s + 1]! << 16 | b[s + 2]! << 8 | b[s + 3]!) >>> 0;
        frames.push({ control, version, type: 0, flags, streamId, payload });
      }
      this.#start += frameHeaderSize + length;
    }
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return frames;
  }

  #append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.#end + chunk.length > this.#buf.length) {
      const held = this.#end - this.#start;
      if (held + chunk.length > this.#buf.length) {
        // Grown to what the bytes held need, never to a frame's announced size.
        const next = new Uint8Array(Math.max(held + chunk.length, this.#buf.length * 2, 16384));
        next.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = next;
      } else {
        this.#buf.copyWithin(0, this.#start, this.#end);
      }
      this.#end = held;
      this.#start = 0;
    }
    this.#buf.set(chunk, this.#end);
    this.#end += chunk.length;
  }
}

// --- encoders -----------------------------------------------------------------------------------------

function controlFrame(type: number, flags: number, payloadLength: number): [Uint8Array, DataView] {
  const out = new Uint8Array(frameHeaderSize + payloadLength);
  const view = new DataView(out.buffer);
  view.setUint16(0, 0x8000 | version);
  view.setUint16(2, type);
  view.setUint32(4, (flags << 24 | payloadLength) >>> 0);
  return [out, view];
}

/** A DATA frame; `data` is copied after the 8-byte header. `fin` half-closes the sender's side. */
export function encodeData(streamId: number, data: Uint8Array, options: { fin?: boolean } = {}): Uint8Array {
  const out = new Uint8Array(frameHeaderSize + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, streamId & maxStreamId);
  view.setUint32(4, ((options.fin ? Flag.fin : 0) << 24 | data.length) >>> 0);
  out.set(data, frameHeaderSize);
  return out;
}

export interface SynStreamFields {
  readonly streamId: number;
  readonly associatedStreamId?: number;
  /** 0 (highest) to 7. */
  readonly priority?: number;
  readonly flags?: number;
  /** The compressed header block. */
  readonly block: Uint8Array;
}

/** A SYN_STREAM: what a client sends to open a stream (the server side never does; tests do). */
export function encodeSynStream(f: SynStreamFields): Uint8Array {
  const [out, view] = controlFrame(ControlType.synStream, f.flags ?? 0, 10 + f.block.length);
  view.setUint32(8, f.streamId & maxStreamId);
  view.setUint32(12, (f.associatedStreamId ?? 0) & maxStreamId);
  out[16] = ((f.priority ?? 0) & 7) << 5;
  out.set(f.block, 18);
  return out;
}

export interface StreamHeadersOptions {
  /** SYN_REPLY (the default) or HEADERS. */
  readonly type?: typeof ControlType.synReply | typeof ControlType.headers;
  readonly fin?: boolean;
}

/** A SYN_REPLY or a HEADERS frame: a stream id and a compressed header block. */
export function encodeStreamHeaders(
  streamId: number,
  block: Uint8Array,
  options: StreamHeadersOptions = {},
): Uint8Array {
  const type = options.type ?? ControlType.synReply;
  const [out, view] = controlFrame(type, options.fin ? Flag.fin : 0, 4 + block.length);
  view.setUint32(8, streamId & maxStreamId);
  out.set(block, 12);
  return out;
}

export function encodeRstStream(streamId: number, status: number): Uint8Array {
  const [out, view] = controlFrame(ControlType.rstStream, 0, 8);
  view.setUint32(8, streamId & maxStreamId);
  view.setUint32(12, status);
  return out;
}

export function encodeSettings(entries: readonly (readonly [id: number, value: number])[]): Uint8Array {
  const [out, view] = controlFrame(ControlType.settings, 0, 4 + entries.length * 8);
  view.setUint32(8, entries.length);
  entries.forEach(([id, value], i) => {
    // Flags (none) in the top byte, the 24-bit id below.
    view.setUint32(12 + i * 8, id & 0xffffff);
    view.setUint32(16 + i * 8, value);
  });
  return out;
}

export function encodePing(id: number): Uint8Array {
  const [out, view] = controlFrame(ControlType.ping, 0, 4);
  view.setUint32(8, id);
  return out;
}

export function encodeGoaway(lastGoodStreamId: number, status: number): Uint8Array {
  const [out, view] = controlFrame(ControlType.goaway, 0, 8);
  view.setUint32(8, lastGoodStreamId & maxStreamId);
  view.setUint32(12, status);
  return out;
}

/** A WINDOW_UPDATE; stream 0 updates the session window (SPDY/3.1). */
export function encodeWindowUpdate(streamId: number, delta: number): Uint8Array {
  const [out, view] = controlFrame(ControlType.windowUpdate, 0, 8);
  view.setUint32(8, streamId & maxStreamId);
  view.setUint32(12, delta & maxWindow);
  return out;
}

// --- control payloads ---------------------------------------------------------------------------------

export type ControlFrame =
  | {
    readonly type: typeof ControlType.synStream;
    readonly flags: number;
    readonly streamId: number;
    readonly associatedStreamId: number;
    readonly priority: number;
    readonly block: Uint8Array;
  }
  | {
    readonly type: typeof ControlType.synReply | typeof ControlType.headers;
    readonly flags: number;
    readonly streamId: number;
    readonly block: Uint8Array;
  }
  | { readonly type: typeof ControlType.rstStream; readonly streamId: number; readonly status: number }
  | { readonly type: typeof ControlType.settings; readonly entries: readonly [id: number, value: number][] }
  | { readonly type: typeof ControlType.ping; readonly id: number }
  | { readonly type: typeof ControlType.goaway; readonly lastGoodStreamId: number; readonly status: number }
  | { readonly type: typeof ControlType.windowUpdate; readonly streamId: number; readonly delta: number }
  | { readonly type: "unknown"; readonly code: number };

function need(frame: RawFrame, name: string, exact: number | undefined, min = 0): DataView {
  const n = frame.payload.length;
  if ((exact !== undefined && n !== exact) || n < min) {
    throw new SpdySessionError(GoawayStatus.protocolError, `${name} frame has a payload of ${n} bytes`);
  }
  return new DataView(frame.payload.buffer, frame.payload.byteOffset, n);
}

/** Reads a control frame's fields; a payload of the wrong size ends the session. */
export function parseControl(frame: RawFrame): ControlFrame {
  const p = frame.payload;
  switch (frame.type) {
    case ControlType.synStream: {
      const v = need(frame, "SYN_STREAM", undefined, 10);
      return {
        type: ControlType.synStream,
        flags: frame.flags,
        streamId: v.getUint32(0) & maxStreamId,
        associatedStreamId: v.getUint32(4) & maxStreamId,
        priority: p[8]! >> 5,
        block: p.subarray(10),
      };
    }
    case ControlType.synReply:
    case ControlType.headers: {
      const v = need(frame, frame.type === ControlType.synReply ? "SYN_REPLY" : "HEADERS", undefined, 4);
      return {
        type: frame.type,
        flags: frame.flags,
        streamId: v.getUint32(0) & maxStreamId,
        block: p.subarray(4),
      };
    }
    case ControlType.rstStream: {
      const v = need(frame, "RST_STREAM", 8);
      return { type: ControlType.rstStream, streamId: v.getUint32(0) & maxStreamId, status: v.getUint32(4) };
    }
    case ControlType.settings: {
      const v = need(frame, "SETTINGS", undefined, 4);
      const count = v.getUint32(0);
      if (p.length !== 4 + count * 8) {
        throw new SpdySessionError(
          GoawayStatus.protocolError,
          `SETTINGS frame announces ${count} entries in ${p.length} bytes`,
        );
      }
      const entries: [number, number][] = [];
      for (let i = 0; i < count; i++) {
        entries.push([v.getUint32(4 + i * 8) & 0xffffff, v.getUint32(8 + i * 8)]);
      }
      return { type: ControlType.settings, entries };
    }
    case ControlType.ping:
      return { type: ControlType.ping, id: need(frame, "PING", 4).getUint32(0) };
    case ControlType.goaway: {
      // SPDY/3 added the status word; a SPDY/2-sized GOAWAY (4 bytes) is accepted as status OK.
      const v = need(frame, "GOAWAY", undefined, 4);
      return {
        type: ControlType.goaway,
        lastGoodStreamId: v.getUint32(0) & maxStreamId,
        status: p.length >= 8 ? v.getUint32(4) : GoawayStatus.ok,
      };
    }
    case ControlType.windowUpdate: {
      const v = need(frame, "WINDOW_UPDATE", 8);
      return {
        type: ControlType.windowUpdate,
        streamId: v.getUint32(0) & maxStreamId,
        delta: v.getUint32(4) & maxWindow,
      };
    }
    default:
      return { type: "unknown", code: frame.type };
  }
}
