/**
 * Header blocks (RFC 9113 §4.3): one HEADERS frame plus any CONTINUATION frames, decoded through HPACK
 * as a whole; and the same split on the way out. Both sides of a connection use these.
 */

import { ErrorCode, Flag, type Frame, FrameType, H2Error, unpad } from "./frames.ts";
import { encodeHeaders, type HeaderField, HpackDecoder, HpackError } from "./hpack.ts";
import { concat } from "./frame_batcher.ts";

/** A bigger block is refused: HPACK lets a peer make us buffer and decode without limit otherwise. */
const maxHeaderBlock = 256 << 10;

export interface HeaderBlock {
  streamId: number;
  /** Flags of the HEADERS frame (END_STREAM). */
  flags: number;
  fields: HeaderField[];
}

/** Where frames go: the connection (its StreamHost.writeFrame). */
export interface FrameOut {
  writeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void;
}

/** Assembles and decodes the header blocks of one connection; one HPACK table for all of them. */
export class HeaderBlockReader {
  readonly #decoder = new HpackDecoder();
  #block: { streamId: number; flags: number; parts: Uint8Array[]; size: number } | undefined;

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
    this.#block = { streamId: f.streamId, flags: f.flags, parts: [fragment], size: fragment.length };
    return f.flags & Flag.endHeaders ? this.#done() : undefined;
  }

  /** A CONTINUATION frame: the block, once END_HEADERS completed it. */
  continuation(f: Frame): HeaderBlock | undefined {
    const block = this.#block;
    if (!block || block.streamId !== f.streamId) {
      throw new H2Error(ErrorCode.protocol, "Unexpected CONTINUATION");
    }
    block.parts.push(f.payload);
    block.size += f.payload.length;
    if (block.size > maxHeaderBlock) throw new H2Error(ErrorCode.enhanceYourCalm, "Header block too large");
    return f.flags & Flag.endHeaders ? this.#done() : undefined;
  }

  #done(): HeaderBlock {
    const block = this.#block!;
    this.#block = undefined;
    const bytes = block.parts.length === 1 ? block.parts[0]! : concat(block.parts, block.size);
    try {
      // Decoded whatever becomes of the stream, to keep the HPACK table in step with the peer's.
      return { streamId: block.streamId, flags: block.flags, fields: this.#decoder.decode(bytes) };
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
