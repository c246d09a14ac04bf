/** HTTP/2 frame layout (RFC 9113 §4, §6): types, flags, error codes, settings, and a streaming parser. */

export const preface = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export const FrameType = {
  data: 0x0,
  headers: 0x1,
  priority: 0x2,
  rstStream: 0x3,
  settings: 0x4,
  pushPromise: 0x5,
  ping: 0x6,
  goaway: 0x7,
  windowUpdate: 0x8,
  continuation: 0x9,
} as const;

export const Flag = {
  endStream: 0x1,
  ack: 0x1,
  endHeaders: 0x4,
  padded: 0x8,
  priority: 0x20,
} as const;

export const ErrorCode = {
  noError: 0x0,
  protocol: 0x1,
  internal: 0x2,
  flowControl: 0x3,
  settingsTimeout: 0x4,
  streamClosed: 0x5,
  frameSize: 0x6,
  refusedStream: 0x7,
  cancel: 0x8,
  compression: 0x9,
  connect: 0xa,
  enhanceYourCalm: 0xb,
  inadequateSecurity: 0xc,
  http11Required: 0xd,
} as const;

export const Setting = {
  headerTableSize: 0x1,
  enablePush: 0x2,
  maxConcurrentStreams: 0x3,
  initialWindowSize: 0x4,
  maxFrameSize: 0x5,
  maxHeaderListSize: 0x6,
} as const;

export const frameHeaderSize = 9;
export const defaultWindow = 65535;
export const maxWindow = 0x7fffffff;
export const defaultMaxFrameSize = 16384;

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Uint8Array;
}

/** An error code as RFC 9113 names it, for messages: "CANCEL, code 8". */
export function errorName(code: number): string {
  const name = Object.entries(ErrorCode).find(([, v]) => v === code)?.[0];
  return name ? `${name.replace(/[A-Z]/g, (c) => "_" + c).toUpperCase()}, code ${code}` : `code ${code}`;
}

/** A connection error: the connection ends with GOAWAY carrying `code`. */
export class H2Error extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = "H2Error";
  }
}

/** Encodes one frame; the payload is copied after the 9-byte header. */
export function encodeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): Uint8Array {
  const length = payload?.length ?? 0;
  const out = new Uint8Array(frameHeaderSize + length);
  writeFrameHeader(out, 0, length, type, flags, streamId);
  if (payload) out.set(payload, frameHeaderSize);
  return out;
}

export function writeFrameHeader(
  out: Uint8Array,
  at: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): void {
  out[at] = length >>> 16;
  out[at + 1] = (length >>> 8) & 0xff;
  out[at + 2] = length & 0xff;
  out[at + 3] = type;
  out[at + 4] = flags;
  out[at + 5] = (streamId >>> 24) & 0x7f;
  out[at + 6] = (streamId >>> 16) & 0xff;
  out[at + 7] = (streamId >>> 8) & 0xff;
  out[at + 8] = streamId & 0xff;
}

export function encodeSettings(settings: [id: number, value: number][]): Uint8Array {
  return encodeFrame(FrameType.settings, 0, 0, settingsPayload(settings));
}

/** SETTINGS' payload: 6 bytes per [id, value]. */
export function settingsPayload(settings: [id: number, value: number][]): Uint8Array {
  const payload = new Uint8Array(6 * settings.length);
  const view = new DataView(payload.buffer);
  settings.forEach(([id, value], i) => {
    view.setUint16(6 * i, id);
    view.setUint32(6 * i + 2, value);
  });
  return payload;
}

export function encodeWindowUpdate(streamId: number, increment: number): Uint8Array {
  const payload = new Uint8Array(4);
  new DataView(payload.buffer).setUint32(0, increment & maxWindow);
  return encodeFrame(FrameType.windowUpdate, 0, streamId, payload);
}

export function encodeGoaway(lastStreamId: number, code: number, debug = ""): Uint8Array {
  return encodeFrame(FrameType.goaway, 0, 0, goawayPayload(lastStreamId, code, debug));
}

/** GOAWAY's payload: the last stream id processed, the error code, and debug text. */
export function goawayPayload(lastStreamId: number, code: number, debug = ""): Uint8Array {
  const text = new TextEncoder().encode(debug);
  const payload = new Uint8Array(8 + text.length);
  const view = new DataView(payload.buffer);
  view.setUint32(0, lastStreamId & maxWindow);
  view.setUint32(4, code);
  payload.set(text, 8);
  return payload;
}

/** A 4-byte big-endian payload (RST_STREAM's error code). */
export function u32(v: number): Uint8Array {
  return Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

export function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

/**
 * Splits a byte stream into frames. Payloads are views into the chunks read, so a frame that arrives
 * whole in one chunk costs no copy.
 */
export class FrameParser {
  #buf: Uint8Array = new Uint8Array(0);
  readonly #maxFrameSize: number;

  constructor(maxFrameSize = defaultMaxFrameSize) {
    this.#maxFrameSize = maxFrameSize;
  }

  /** Frames completed by `chunk`; throws H2Error(FRAME_SIZE_ERROR) for a frame over the limit. */
  push(chunk: Uint8Array): Frame[] {
    let buf = chunk;
    if (this.#buf.length > 0) {
      buf = new Uint8Array(this.#buf.length + chunk.length);
      buf.set(this.#buf);
      buf.set(chunk, this.#buf.length);
    }
    const frames: Frame[] = [];
    let pos = 0;
    while (buf.length - pos >= frameHeaderSize) {
      const length = (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
      if (length > this.#maxFrameSize) {
        throw new H2Error(
          ErrorCode.frameSize,
          `Frame of ${length} bytes exceeds the maximum ${this.#maxFrameSize}`,
        );
      }
      if (buf.length - pos < frameHeaderSize + length) break;
      frames.push({
        type: buf[pos + 3]!,
        flags: buf[pos + 4]!,
        streamId: readUint32(buf, pos + 5) & maxWindow,
        payload: buf.subarray(pos + frameHeaderSize, pos + frameHeaderSize + length),
      });
      pos += frameHeaderSize + length;
    }
    // Keep the tail as a copy so a partial frame doesn't pin a large chunk.
    this.#buf = pos === buf.length ? new Uint8Array(0) : buf.slice(pos);
    return frames;
  }
}

/** The payload without padding (DATA and HEADERS with PADDED); throws PROTOCOL_ERROR if padding overflows. */
export function unpad(frame: Frame): Uint8Array {
  if (!(frame.flags & Flag.padded)) return frame.payload;
  const p = frame.payload;
  if (p.length < 1) throw new H2Error(ErrorCode.frameSize, "Padded frame without a pad length");
  const pad = p[0]!;
  if (pad >= p.length) throw new H2Error(ErrorCode.protocol, "Padding exceeds the frame payload");
  return p.subarray(1, p.length - pad);
}
