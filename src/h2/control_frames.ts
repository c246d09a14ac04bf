/** Checks and answers for the control frames both ends treat alike: SETTINGS, PING, GOAWAY, RST_STREAM. */

import {
  defaultMaxFrameSize,
  ErrorCode,
  Flag,
  type Frame,
  FrameType,
  H2Error,
  maxWindow,
  readUint32,
} from "./frames.ts";
import type { FrameOut } from "./header_block.ts";

/**
 * The [id, value] pairs of a SETTINGS frame, or undefined for an ACK. `strictAck` makes an ACK with a
 * payload a FRAME_SIZE_ERROR (RFC 9113 §6.5).
 */
export function settingsEntries(f: Frame, options: { strictAck: boolean }): [number, number][] | undefined {
  if (f.streamId !== 0) throw new H2Error(ErrorCode.protocol, "SETTINGS on a stream");
  if (f.flags & Flag.ack) {
    if (options.strictAck && f.payload.length !== 0) {
      throw new H2Error(ErrorCode.frameSize, "SETTINGS ack with a payload");
    }
    return undefined;
  }
  if (f.payload.length % 6 !== 0) {
    throw new H2Error(ErrorCode.frameSize, "SETTINGS payload is not 6n bytes");
  }
  const entries: [number, number][] = [];
  for (let at = 0; at < f.payload.length; at += 6) {
    entries.push([(f.payload[at]! << 8) | f.payload[at + 1]!, readUint32(f.payload, at + 2)]);
  }
  return entries;
}

/** SETTINGS_MAX_FRAME_SIZE, checked against its range (RFC 9113 §6.5.2). */
export function checkMaxFrameSize(value: number): number {
  if (value < defaultMaxFrameSize || value > 0xffffff) {
    throw new H2Error(ErrorCode.protocol, `SETTINGS_MAX_FRAME_SIZE ${value} out of range`);
  }
  return value;
}

/** A PING is answered with the same payload and ACK; an ACK needs no answer. */
export function answerPing(f: Frame, out: FrameOut): void {
  if (f.streamId !== 0) throw new H2Error(ErrorCode.protocol, "PING on a stream");
  if (f.payload.length !== 8) throw new H2Error(ErrorCode.frameSize, "PING payload is not 8 bytes");
  if (!(f.flags & Flag.ack)) out.writeFrame(FrameType.ping, Flag.ack, 0, f.payload.slice());
}

/**
 * The last stream id the peer processed and its error code, from a GOAWAY. `strict`: a payload too short
 * to hold them is a FRAME_SIZE_ERROR; otherwise it reads as undefined.
 */
export function readGoaway(
  f: Frame,
  options: { strict: boolean },
): { lastStreamId: number; code: number } | undefined {
  if (f.streamId !== 0) throw new H2Error(ErrorCode.protocol, "GOAWAY on a stream");
  if (f.payload.length < 8) {
    if (options.strict) throw new H2Error(ErrorCode.frameSize, "GOAWAY payload is too short");
    return undefined;
  }
  return { lastStreamId: readUint32(f.payload, 0) & maxWindow, code: readUint32(f.payload, 4) };
}

/** The error code of an RST_STREAM. */
export function rstStreamCode(f: Frame): number {
  if (f.streamId === 0) throw new H2Error(ErrorCode.protocol, "RST_STREAM on stream 0");
  if (f.payload.length !== 4) {
    throw new H2Error(ErrorCode.frameSize, "RST_STREAM payload is not 4 bytes");
  }
  return readUint32(f.payload, 0);
}
