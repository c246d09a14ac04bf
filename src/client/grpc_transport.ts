/**
 * A Connect `Transport` speaking gRPC (binary protobuf) over Berth's own HTTP/2 client connection
 * (src/h2/client): no node:http2, node:net or connect-node on the client's start path. Connect's
 * call runners apply interceptors, deadlines and cancellation; its gRPC helpers build request headers
 * and read statuses, so error codes, messages and metadata match connect-node's gRPC transport.
 */

import {
  type DescMessage,
  type DescMethodStreaming,
  type DescMethodUnary,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type Interceptor,
  type StreamResponse,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import { encodeEnvelope, runStreamingCall, runUnaryCall } from "@connectrpc/connect/protocol";
import { requestHeader, validateResponse, validateTrailer } from "@connectrpc/connect/protocol-grpc";
import {
  ErrorCode,
  type H2ClientConnection,
  type H2ClientStream,
  H2StreamError,
  type HeaderField,
} from "../h2/client/mod.ts";
import { MessageReader } from "./envelope.ts";

export interface GrpcTransportOptions {
  /** Opens a new HTTP/2 connection: on the first call, and again once the current one closes or goes away. */
  connect: () => Promise<H2ClientConnection>;
  interceptors?: Interceptor[];
  /** Deadline of calls that give none (milliseconds). */
  defaultTimeoutMs?: number;
  /** Largest response message accepted (default 4 MiB). */
  readMaxBytes?: number;
  /** Largest request message sent (default 4 MiB). */
  writeMaxBytes?: number;
}

/** A unary call refused before the server processed it (GOAWAY, REFUSED_STREAM) runs again this often. */
const refusedRetries = 2;

export class GrpcTransport implements Transport {
  readonly #options: GrpcTransportOptions;
  readonly #readMax: number;
  readonly #writeMax: number;
  #conn: Promise<H2ClientConnection> | undefined;
  #current: H2ClientConnection | undefined;
  readonly #all = new Set<H2ClientConnection>();
  #closed = false;

  constructor(options: GrpcTransportOptions) {
    this.#options = options;
    this.#readMax = options.readMaxBytes ?? 4 << 20;
    this.#writeMax = options.writeMaxBytes ?? 4 << 20;
  }

  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: MessageInitShape<I>,
    contextValues?: ContextValues,
  ): Promise<UnaryResponse<I, O>> {
    return runUnaryCall<I, O>({
      ...this.#call(method, { stream: false, signal, timeoutMs, header, contextValues, message: input }),
      next: async (req) => {
        const body = this.#encode(method.input, req.message);
        for (let attempt = 0;; attempt++) {
          let stream: H2ClientStream | undefined;
          const onAbort = () => stream?.reset(ErrorCode.cancel);
          req.signal.addEventListener("abort", onAbort);
          try {
            req.signal.throwIfAborted();
            stream = await this.#open(method, req.header);
            stream.write(body, true).catch(() => {});
            return await this.#unaryResponse(method, stream);
          } catch (err) {
            if (req.signal.aborted) throw req.signal.reason;
            if (err instanceof H2StreamError && err.kind === "refused" && attempt < refusedRetries) continue;
            throw toConnectError(err);
          } finally {
            req.signal.removeEventListener("abort", onAbort);
          }
        }
      },
    });
  }

  stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodStreaming<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: AsyncIterable<MessageInitShape<I>>,
    contextValues?: ContextValues,
  ): Promise<StreamResponse<I, O>> {
    return runStreamingCall<I, O>({
      ...this.#call(method, { stream: true, signal, timeoutMs, header, contextValues, message: input }),
      next: async (req) => {
        req.signal.throwIfAborted();
        const stream = await this.#open(method, req.header).catch((err) => {
          throw toConnectError(err);
        });
        const onAbort = () => stream.reset(ErrorCode.cancel);
        req.signal.addEventListener("abort", onAbort);
        // The request body goes out while the response is read: bidi servers answer before it ends.
        let inputError: unknown;
        const fail = (err: unknown): ConnectError => {
          if (req.signal.aborted) return ConnectError.from(req.signal.reason, Code.Canceled);
          return inputError !== undefined ? ConnectError.from(inputError) : toConnectError(err);
        };
        (async () => {
          for await (const message of req.message) await stream.write(this.#encode(method.input, message));
          await stream.write(new Uint8Array(0), true);
        })().catch((err) => {
          if (stream.closed) return;
          inputError = err;
          stream.reset(ErrorCode.cancel);
        });
        let head;
        try {
          head = await stream.response;
        } catch (err) {
          req.signal.removeEventListener("abort", onAbort);
          throw fail(err);
        }
        const responseHeader = fieldsToHeaders(head.fields);
        const { foundStatus, headerError } = validateResponse(head.status, responseHeader);
        if (headerError) {
          req.signal.removeEventListener("abort", onAbort);
          stream.reset(ErrorCode.cancel);
          throw headerError;
        }
        const trailer = new Headers();
        const readMax = this.#readMax;
        async function* messages(): AsyncGenerator<MessageShape<O>> {
          try {
            const reader = new MessageReader(readMax);
            for (;;) {
              const chunk = await stream.read();
              if (chunk === null) break;
              for (const data of reader.push(chunk)) yield fromBinary(method.output, data);
            }
            reader.end();
            for (const [n, v] of stream.trailers ?? []) trailer.append(n, v);
            if (!foundStatus) validateTrailer(trailer, responseHeader);
          } catch (err) {
            throw err instanceof ConnectError ? err : fail(err);
          } finally {
            req.signal.removeEventListener("abort", onAbort);
            if (!stream.closed) stream.reset(ErrorCode.cancel);
          }
        }
        return {
          stream: true,
          service: method.parent,
          method,
          header: responseHeader,
          trailer,
          message: messages(),
        };
      },
    });
  }

  /** Ends every connection and the calls on them. */
  close(): void {
    this.#closed = true;
    for (const c of this.#all) c.destroy();
    this.#all.clear();
    this.#conn = undefined;
    this.#current = undefined;
  }

  /** What runUnaryCall and runStreamingCall take besides `next`: the request as interceptors see it. */
  #call<M extends { parent: DescService; name: string }, S extends boolean, T>(
    method: M,
    call: {
      stream: S;
      signal: AbortSignal | undefined;
      timeoutMs: number | undefined;
      header: HeadersInit | undefined;
      contextValues: ContextValues | undefined;
      message: T;
    },
  ) {
    const timeoutMs = this.#timeout(call.timeoutMs);
    return {
      interceptors: this.#options.interceptors,
      signal: call.signal,
      timeoutMs,
      req: {
        stream: call.stream,
        service: method.parent,
        method,
        requestMethod: "POST",
        url: methodUrl(method),
        header: requestHeader(true, timeoutMs, call.header),
        contextValues: call.contextValues ?? createContextValues(),
        message: call.message,
      },
    };
  }

  #timeout(timeoutMs: number | undefined): number | undefined {
    if (timeoutMs === undefined) return this.#options.defaultTimeoutMs || undefined;
    return timeoutMs <= 0 ? undefined : timeoutMs;
  }

  #encode<I extends DescMessage>(desc: I, message: MessageShape<I>): Uint8Array {
    const bytes = toBinary(desc, message);
    if (bytes.length > this.#writeMax) {
      throw new ConnectError(
        `message size ${bytes.length} is larger than configured writeMaxBytes ${this.#writeMax}`,
        Code.ResourceExhausted,
      );
    }
    return encodeEnvelope(0, bytes);
  }

  #connection(): Promise<H2ClientConnection> {
    if (this.#closed) return Promise.reject(new ConnectError("Client is closed", Code.Canceled));
    if (this.#current && !this.#current.usable) {
      this.#current = undefined;
      this.#conn = undefined;
    }
    if (!this.#conn) {
      const pending = this.#options.connect().then((c) => {
        if (this.#closed) {
          c.destroy();
          throw new ConnectError("Client is closed", Code.Canceled);
        }
        this.#all.add(c);
        c.done.finally(() => this.#all.delete(c));
        if (this.#conn === pending) this.#current = c;
        return c;
      }, (err) => {
        if (this.#conn === pending) this.#conn = undefined;
        throw connectFailure(err);
      });
      this.#conn = pending;
    }
    return this.#conn;
  }

  async #open(
    method: { parent: { typeName: string }; name: string },
    header: Headers,
  ): Promise<H2ClientStream> {
    const fields: HeaderField[] = [
      [":method", "POST"],
      [":scheme", "http"],
      [":path", `/${method.parent.typeName}/${method.name}`],
      [":authority", "localhost"],
    ];
    header.forEach((value, name) => fields.push([name, value]));
    for (let attempt = 0;; attempt++) {
      const conn = await this.#connection();
      try {
        return await conn.request(fields, false);
      } catch (err) {
        // The connection went away between the check and the request: take a fresh one.
        if (err instanceof H2StreamError && err.kind === "refused" && attempt < refusedRetries) continue;
        throw err;
      }
    }
  }

  async #unaryResponse<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    stream: H2ClientStream,
  ): Promise<UnaryResponse<I, O>> {
    const head = await stream.response;
    const header = fieldsToHeaders(head.fields);
    const { headerError } = validateResponse(head.status, header);
    const reader = new MessageReader(this.#readMax);
    let data: Uint8Array | undefined;
    for (;;) {
      const chunk = await stream.read();
      if (chunk === null) break;
      for (const message of reader.push(chunk)) {
        if (data !== undefined) {
          throw new ConnectError(
            "protocol error: received extra output message for unary method",
            Code.Unimplemented,
          );
        }
        data = message;
      }
    }
    reader.end();
    const trailer = fieldsToHeaders(stream.trailers ?? []);
    validateTrailer(trailer, header);
    if (data === undefined) {
      if (headerError) throw headerError;
      throw new ConnectError(
        "protocol error: missing output message for unary method",
        trailer.has("grpc-status") ? Code.Unimplemented : Code.Unknown,
      );
    }
    if (headerError) {
      throw new ConnectError(
        "protocol error: received output message for unary method with error status",
        Code.Unknown,
      );
    }
    return {
      stream: false,
      service: method.parent,
      method,
      header,
      message: fromBinary(method.output, data),
      trailer,
    };
  }
}

function methodUrl(method: { parent: { typeName: string }; name: string }): string {
  return `http://localhost/${method.parent.typeName}/${method.name}`;
}

/** Response header fields as Headers, pseudo-headers left out. */
export function fieldsToHeaders(fields: readonly HeaderField[]): Headers {
  const h = new Headers();
  for (const [name, value] of fields) if (name.charCodeAt(0) !== 58) h.append(name, value);
  return h;
}

/** A connection that could not be made, as Unavailable (describe() in cli/main.ts matches its words). */
export function connectFailure(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  return new ConnectError(
    err instanceof Error ? err.message : String(err),
    Code.Unavailable,
    undefined,
    undefined,
    err,
  );
}

/** HTTP/2 stream failures as gRPC codes (gRPC over HTTP/2, "Errors"). */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (!(err instanceof H2StreamError)) return ConnectError.from(err);
  if (err.kind !== "reset") return new ConnectError(err.message, Code.Unavailable, undefined, undefined, err);
  const code = err.code === ErrorCode.refusedStream
    ? Code.Unavailable
    : err.code === ErrorCode.cancel
    ? Code.Canceled
    : err.code === ErrorCode.enhanceYourCalm
    ? Code.ResourceExhausted
    : err.code === ErrorCode.inadequateSecurity
    ? Code.PermissionDenied
    : Code.Internal;
  return new ConnectError(err.message, code, undefined, undefined, err);
}
