/**
 * Header blocks (RFC 9113 §4.3): one HEADERS frame plus any CONTINUATION frames, decoded through HPACK
 * as a whole; and the same split on the way out. Both sides of a connection use these. A block is
 * bounded while it arrives (its encoded size and its CONTINUATION count) and while it is decoded (the
 * header list size).
 */

import { ErrorCode, Flag, type Frame, FrameType, H2Error, unpad } from "./frames.ts";
import { encodeHeaders, type HeaderField, HpackDecoder, HpackError } from "./hpack.ts";
import { concat } from "./frame_writer.ts";
import { headerBlockFactor, maxContinuationFrames } from "./limits.ts";

export interface HeaderBlock {
  streamId: number;
  /** Flags of the HEADERS frame (END_STREAM). */
  flags: number;
  /** Empty when `truncated`. */
  fields: HeaderField[];
  /** The decoded list went past the limit: the stream gets an error, the connection goes on. */
  truncated: boolean;
}

/** Where frames go: the connection. */
export interface FrameOut {
  writeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void;
}

/** Assembles and decodes the header blocks of one connection; one HPACK table for all of them. */
export class HeaderBlockReader {
  readonly #decoder = new HpackDecoder();
  readonly #maxListSize: number;
  readonly #maxBlockSize: number;
  #block: { streamId: number; flags: number; parts: Uint8Array[]; size: number } | undefined;

  /** `maxListSize`: the SETTINGS_MAX_HEADER_LIST_SIZE we advertised. */
  constructor(maxListSize: number) {
    this.#maxListSize = maxListSize;
    this.#maxBlockSize = headerBlockFactor * maxListSize;
  }

  /** Inside a header block only CONTINUATION may come (RFC 9113 §6.10). */
  check(f: Frame): void {
    if (this.#block && f.type !== FrameType.continuation) {
      throw new H2Error(ErrorCode.protocol, "Expected CONTINUATION inside a header block");
    }
  }

  /** A HEADERS frame: the block, once END_HEADERS completed it. */
  headers(f: Frame): HeaderBlock | undefined {
    if (f.streamId === 0) throw new H2Error(ErrorCode.protocol, "HEADERS on stream 0");
    let fragment = unpad(f);
    if (f.flags & Flag.priority) {
      if (fragment.length < 5) throw new H2Error(ErrorCode.frameSize, "HEADERS priority fields truncated");
      fragment = fragment.subarray(5);
    }
    this.#block = { streamId: f.streamId, flags: f.flags, parts: [fragment], size: 0 };
    this.#grow(fragment.length);
    return f.flags & Flag.endHeaders ? this.#done() : undefined;
  }

  /** A CONTINUATION frame: the block, once END_HEADERS completed it. */
  continuation(f: Frame): HeaderBlock | undefined {
    const block = this.#block;
    if (!block || block.streamId !== f.streamId) {
      throw new H2Error(ErrorCode.protocol, "Unexpected CONTINUATION");
    }
    if (block.parts.length > maxContinuationFrames) {
      throw new H2Error(
        ErrorCode.enhanceYourCalm,
        `Header block of stream ${f.streamId} takes more than ${maxContinuationFrames} CONTINUATION frames`,
      );
    }
    block.parts.push(f.payload);
    this.#grow(f.payload.length);
    return f.flags & Flag.endHeaders ? this.#done() : undefined;
  }

  #grow(n: number): void {
    const block = this.#block!;
    block.size += n;
    if (block.size > this.#maxBlockSize) {
      throw new H2Error(
        ErrorCode.enhanceYourCalm,
        `Header block of stream ${block.streamId} exceeds ${this.#maxBlockSize} bytes`,
      );
    }
  }

  #done(): HeaderBlock {
    const block = this.#block!;
    this.#block = undefined;
    const bytes = block.parts.length === 1 ? block.parts[0]! : concat(block.parts, block.size);
    try {
      // Decoded whatever becomes of the stream, to keep the HPACK table in step with the peer's.
      const { fields, truncated } = this.#decoder.decodeList(bytes, this.#maxListSize);
      return { streamId: block.streamId, flags: block.flags, fields, truncated };
    } catch (err) {
      if (err instanceof HpackError) throw new H2Error(ErrorCode.compression, err.message);
      throw err;
    }
  }
}

/** Encodes `fields` as HEADERS plus the CONTINUATION frames the peer's frame size makes necessary. */
export function writeHeaderBlock(
  out: FrameOut,
  streamId: number,
  options: { fields: HeaderField[]; endStream: boolean; maxFrameSize: number },
): void {
  const block = encodeHeaders(options.fields);
  const max = options.maxFrameSize;
  let flags = options.endStream ? Flag.endStream : 0;
  if (block.length <= max) {
    out.writeFrame(FrameType.headers, flags | Flag.endHeaders, streamId, block);
    return;
  }
  for (let at = 0, type: number = FrameType.headers; at < block.length; at += max) {
    const last = at + max >= block.length;
    out.writeFrame(type, flags | (last ? Flag.endHeaders : 0), streamId, block.subarray(at, at + max));
    type = FrameType.continuation;
    flags = 0;
  }
}
