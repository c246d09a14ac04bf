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

/** The [id, value] pairs of a SETTINGS frame, or undefined for an ACK (RFC 9113 §6.5). */
export function settingsEntries(f: Frame): [number, number][] | undefined {
  if (f.streamId !== 0) throw new H2Error(ErrorCode.protocol, "SETTINGS on a stream");
  if (f.flags & Flag.ack) {
    if (f.payload.length !== 0) throw new H2Error(ErrorCode.frameSize, "SETTINGS ack with a payload");
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

/** The last stream id the peer processed and its error code, from a GOAWAY. */
export function readGoaway(f: Frame): { lastStreamId: number; code: number } {
  if (f.streamId !== 0) throw new H2Error(ErrorCode.protocol, "GOAWAY on a stream");
  if (f.payload.length < 8) throw new H2Error(ErrorCode.frameSize, "GOAWAY payload is too short");
  return { lastStreamId: readUint32(f.payload, 0) & maxWindow, code: readUint32(f.payload, 4) };
}

/** A PRIORITY frame is ignored (RFC 9113 §5.3.2) once its size is checked: false if it is wrong. */
export function priorityWellFormed(f: Frame): boolean {
  if (f.streamId === 0) throw new H2Error(ErrorCode.protocol, "PRIORITY on stream 0");
  return f.payload.length === 5;
}

/** The error code of an RST_STREAM. */
export function rstStreamCode(f: Frame): number {
  if (f.streamId === 0) throw new H2Error(ErrorCode.protocol, "RST_STREAM on stream 0");
  if (f.payload.length !== 4) {
    throw new H2Error(ErrorCode.frameSize, "RST_STREAM payload is not 4 bytes");
  }
  return readUint32(f.payload, 0);
}
