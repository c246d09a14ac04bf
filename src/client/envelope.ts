/** Response bodies as gRPC messages (src/h2/grpc_envelope.ts), failing with connect-node's codes and words. */

import { Code, ConnectError } from "@connectrpc/connect";
import { EnvelopeError, EnvelopeReader } from "../h2/grpc_envelope.ts";

export class MessageReader {
  readonly #reader: EnvelopeReader;

  constructor(readMax: number) {
    this.#reader = new EnvelopeReader(readMax);
  }

  /** Messages completed by `chunk`; all of them are checked before any is handed out. */
  push(chunk: Uint8Array): Uint8Array[] {
    this.#reader.push(chunk);
    const out: Uint8Array[] = [];
    try {
      for (let m = this.#reader.next(); m !== undefined; m = this.#reader.next()) out.push(m);
    } catch (err) {
      if (!(err instanceof EnvelopeError)) throw err;
      throw envelopeConnectError(err);
    }
    return out;
  }

  /** At the end of the body: a partial message is a protocol error. */
  end(): void {
    const left = this.#reader.buffered;
    if (left > 0) throw truncatedBody(left);
  }
}

/** A body that is not a sequence of acceptable messages, as connect-node words it. */
export function envelopeConnectError(err: EnvelopeError): ConnectError {
  if (err.reason === "too_large") return new ConnectError(err.message, Code.ResourceExhausted);
  return new ConnectError(
    "protocol error: received a compressed message that was not asked for",
    Code.Internal,
  );
}

/** A body that ended `left` bytes into a message. */
export function truncatedBody(left: number): ConnectError {
  return new ConnectError(
    `protocol error: response ended inside a message (${left} bytes left)`,
    Code.Internal,
  );
}
