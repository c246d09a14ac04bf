/** One call stream on the client: the request's body out, the response's headers, body and trailers in. */

import { ErrorCode } from "../frames.ts";
import type { HeaderField } from "../hpack.ts";
import type { HeaderListKind } from "../header_fields.ts";
import { H2Stream, H2StreamError, type StreamHost } from "../stream.ts";

export interface ResponseHead {
  status: number;
  fields: HeaderField[];
  /** The response ended with these headers (a trailers-only answer). */
  endStream: boolean;
}

export class H2ClientStream extends H2Stream {
  /** Response trailers, once they arrived. */
  trailers: HeaderField[] | undefined;
  readonly response: Promise<ResponseHead>;
  #head: { resolve: (h: ResponseHead) => void; reject: (e: Error) => void } | undefined;
  #gotHead = false;

  constructor(host: StreamHost, id: number, windows: { send: number; recv: number }) {
    super(host, id, windows);
    this.response = new Promise((resolve, reject) => this.#head = { resolve, reject });
    // Callers that only read the body must not see an unhandled rejection here.
    this.response.catch(() => {});
  }

  /** Set when the request was sent with END_STREAM on its HEADERS frame. */
  markLocalEnded(): void {
    this.endLocal();
  }

  // --- request body -------------------------------------------------------------------------------

  /**
   * Queues request DATA (with `end`, the last of the body); resolves once it is framed, rejects if the
   * stream dies first.
   */
  write(data: Uint8Array, end = false): Promise<void> {
    return this.enqueue({ data, end });
  }

  /** Ends the request body (an empty DATA frame with END_STREAM after what is queued). */
  end(): Promise<void> {
    return this.enqueue({ data: new Uint8Array(0), end: true });
  }

  // --- response -----------------------------------------------------------------------------------

  get expectedHeaders(): HeaderListKind {
    return this.#gotHead ? "trailers" : "response";
  }

  /** From the connection: a complete, well-formed header block. */
  receiveHeaders(fields: HeaderField[], endStream: boolean): void {
    if (!this.#gotHead) {
      const status = Number(fields.find(([n]) => n === ":status")![1]);
      // Informational answers (100 Continue) precede the real one.
      if (status >= 100 && status < 200 && !endStream) return;
      this.#gotHead = true;
      this.#head?.resolve({ status, fields, endStream });
      this.#head = undefined;
    } else if (endStream) {
      this.trailers = fields;
    } else {
      return this.reset(ErrorCode.protocol, `Response trailers of stream ${this.id} without END_STREAM`);
    }
    if (endStream) this.receiveEnd();
  }

  /** From the connection: response DATA (already flow-control checked). */
  override receiveData(data: Uint8Array, end: boolean): void {
    if (!this.#gotHead) {
      this.host.consumed(undefined, data.length);
      return this.reset(ErrorCode.protocol, `Response DATA before HEADERS on stream ${this.id}`);
    }
    super.receiveData(data, end);
  }

  protected override remoteEnding(): void {
    if (!this.#gotHead) {
      this.fail(new H2StreamError(ErrorCode.protocol, `Response of stream ${this.id} ended without HEADERS`));
    }
    // The response is complete: a request body still being sent is of no use to the server.
    if (!this.localEnded) this.stopSending();
  }

  protected override failing(err: H2StreamError): void {
    this.#head?.reject(err);
    this.#head = undefined;
  }

  /** The caller reads the response after it arrived in full. */
  protected get discardsUnreadBody(): boolean {
    return false;
  }
}
