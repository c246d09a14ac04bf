/**
 * Plain gRPC (application/grpc, uncompressed) without Connect's protocol layer: 5-byte message framing,
 * protobuf binary, the service implementation called directly, headers + messages + trailers written in
 * as few socket writes as the windows allow. Everything else (Connect, gRPC-web, compressed gRPC) goes
 * through Connect's universal handlers, which the RecordingRouter registers alongside, or later.
 */

import {
  create,
  type DescMethod,
  type DescService,
  fromBinary,
  isMessage,
  toBinary,
} from "@bufbuild/protobuf";
import type { DescMessage } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createContextValues,
  type HandlerContext,
} from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { grpcStatusOk, parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { toConnectError } from "../../services/errors.ts";
import { type H2ServerStream, H2StreamError, type HeaderField } from "../../h2/server/mod.ts";
import { EnvelopeError, EnvelopeReader } from "../../h2/grpc_envelope.ts";
import { headerFields } from "./universal.ts";

type AnyImpl = (input: unknown, ctx: HandlerContext) => unknown;

export interface FastMethod {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly impl: AnyImpl;
}

/** What a RecordingRouter keeps: implementations for the fast path, and Connect's router when there is one. */
export interface RecordedRoutes {
  readonly router: ConnectRouter;
  /** Each implemented method by request path. */
  readonly methods: Map<string, FastMethod>;
  /** The request path of every method of every registered service, implemented or not. */
  readonly paths: Set<string>;
  /** Registers everything recorded so far into `connect`, and from then on each new registration too. */
  replay(connect: ConnectRouter): void;
}

/**
 * A router that keeps each implementation by request path and each registration, passed on to Connect's
 * router at once when one is given, else when `replay` gets one.
 */
export function recordingRouter(connect?: ConnectRouter): RecordedRoutes {
  const methods = new Map<string, FastMethod>();
  const paths = new Set<string>();
  const registrations: ((target: ConnectRouter) => void)[] = [];
  let target = connect;
  const record = (register: (target: ConnectRouter) => void) => {
    registrations.push(register);
    if (target) register(target);
  };
  const router: ConnectRouter = {
    get handlers() {
      return target?.handlers ?? [];
    },
    service(service, implementation, options) {
      record((t) => t.service(service, implementation, options));
      for (const method of service.methods) {
        const path = `/${service.typeName}/${method.name}`;
        paths.add(path);
        const fn = (implementation as Record<string, unknown>)[method.localName];
        if (typeof fn === "function") {
          methods.set(path, { service, method, impl: (fn as AnyImpl).bind(implementation) });
        }
      }
      return this;
    },
    rpc(method, impl, options) {
      record((t) => t.rpc(method, impl, options));
      const path = `/${method.parent.typeName}/${method.name}`;
      paths.add(path);
      methods.set(path, { service: method.parent, method, impl: impl as unknown as AnyImpl });
      return this;
    },
  };
  return {
    router,
    methods,
    paths,
    replay(connect) {
      target = connect;
      for (const register of registrations) register(connect);
    },
  };
}

export interface FastCallStart {
  service: string;
  method: string;
  kind: DescMethod["methodKind"];
}

export interface FastCall extends FastCallStart {
  namespace: string;
  code: Code | 0;
  ms: number;
  error?: string;
  received: number;
  sent: number;
}

export interface GrpcFastPathOptions {
  maxMessageBytes: number;
  onCall?: (call: FastCall) => void;
  onStart?: (call: FastCallStart) => void;
}

export class GrpcFastPath {
  readonly #methods: ReadonlyMap<string, FastMethod>;
  readonly #options: GrpcFastPathOptions;

  constructor(methods: ReadonlyMap<string, FastMethod>, options: GrpcFastPathOptions) {
    this.#methods = methods;
    this.#options = options;
  }

  /**
   * Serves the stream if it is a plain gRPC call to a known method: the call, settled when it has finished.
   * Undefined leaves the stream to the caller.
   */
  serve(stream: H2ServerStream): Promise<void> | undefined {
    const type = stream.header("content-type");
    if (type !== "application/grpc" && type !== "application/grpc+proto") return undefined;
    const encoding = stream.header("grpc-encoding");
    if (encoding !== undefined && encoding !== "identity") return undefined;
    const m = this.#methods.get(stream.path);
    if (!m || stream.method !== "POST") return undefined;
    return new FastCallRun(stream, m, type, this.#options).run();
  }
}

/** setTimeout takes at most 2^31-1 ms; a longer one would fire at once. */
const maxTimerMs = 0x7fffffff;

class FastCallRun {
  readonly #stream: H2ServerStream;
  readonly #m: FastMethod;
  readonly #type: string;
  readonly #options: GrpcFastPathOptions;
  readonly #ctx: FastContext;
  readonly #start = performance.now();
  readonly #reader: EnvelopeReader;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #finished = false;
  #received = 0;
  #sent = 0;

  constructor(stream: H2ServerStream, m: FastMethod, type: string, options: GrpcFastPathOptions) {
    this.#stream = stream;
    this.#m = m;
    this.#type = type;
    this.#options = options;
    this.#ctx = new FastContext(stream, m);
    this.#reader = new EnvelopeReader(options.maxMessageBytes);
  }

  async run(): Promise<void> {
    this.#options.onStart?.({
      service: this.#m.service.typeName,
      method: this.#m.method.name,
      kind: this.#m.method.methodKind,
    });
    try {
      const timeout = parseTimeout(this.#stream.header("grpc-timeout") ?? null, Number.MAX_SAFE_INTEGER);
      if (timeout.error) throw timeout.error;
      if (timeout.timeoutMs !== undefined) this.#deadline(timeout.timeoutMs);
      const { method, impl } = this.#m;
      const ctx = this.#ctx as unknown as HandlerContext;
      switch (method.methodKind) {
        case "unary": {
          const out = await impl(await this.#single(), ctx);
          this.#send(out, true);
          break;
        }
        case "server_streaming":
          for await (const out of impl(await this.#single(), ctx) as AsyncIterable<unknown>) {
            await this.#send(out);
          }
          break;
        case "client_streaming":
          this.#send(await impl(this.#inputs(), ctx), true);
          break;
        case "bidi_streaming":
          for await (const out of impl(this.#inputs(), ctx) as AsyncIterable<unknown>) await this.#send(out);
          break;
      }
      this.#finish(undefined);
    } catch (err) {
      this.#finish(err);
    }
  }

  /** Ends the call with DEADLINE_EXCEEDED after `ms`; a deadline beyond what a timer can hold never comes. */
  #deadline(ms: number): void {
    this.#ctx.deadline = Date.now() + ms;
    if (ms > maxTimerMs) return;
    this.#timer = setTimeout(() => {
      const err = new ConnectError("the operation timed out", Code.DeadlineExceeded);
      this.#stream.cancelSignal(err);
      this.#finish(err);
    }, ms);
  }

  /** Frames one response message; the first one sends the response headers before it. */
  #send(out: unknown, last = false): Promise<void> {
    if (this.#finished) return Promise.resolve();
    const schema = this.#m.method.output;
    const bytes = toBinary(schema, isMessage(out, schema) ? out : create(schema, out as never));
    if (bytes.length > this.#options.maxMessageBytes) {
      throw new ConnectError(
        `message size ${bytes.length} is larger than configured writeMaxBytes ${this.#options.maxMessageBytes}`,
        Code.ResourceExhausted,
      );
    }
    const frame = encodeEnvelope(0, bytes);
    const stream = this.#stream;
    if (!stream.headersSent) stream.respond(this.#responseHeaders());
    const written = stream.write(frame);
    this.#sent++;
    if (last) {
      // Unary answers go out with their trailers in the same write.
      written.catch(() => {});
      return Promise.resolve();
    }
    return written;
  }

  #responseHeaders(): HeaderField[] {
    const fields: HeaderField[] = [[":status", "200"], ["content-type", this.#type]];
    const extra = this.#ctx.responseHeaderIfAny;
    if (extra) fields.push(...headerFields(extra));
    return fields;
  }

  #finish(err: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    // Only a timer that exists: clearTimeout's first use loads Deno's Node timers (~5 ms; base/timers.ts).
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const stream = this.#stream;
    const e = err === undefined
      ? undefined
      : err instanceof H2StreamError
      ? new ConnectError(err.message, Code.Canceled)
      : toConnectError(err);
    this.#options.onCall?.({
      service: this.#m.service.typeName,
      method: this.#m.method.name,
      kind: this.#m.method.methodKind,
      namespace: stream.header("containerd-namespace") ?? "",
      code: e ? e.code : 0,
      ms: performance.now() - this.#start,
      error: e?.rawMessage,
      received: this.#received,
      sent: this.#sent,
    });
    if (stream.closed) return;
    const extra = this.#ctx.responseTrailerIfAny;
    // Most calls succeed and set no trailers of their own: they need no Headers object.
    const trailers: HeaderField[] = e || extra
      ? headerFields(setTrailerStatus(extra ?? new Headers(), e))
      : [["grpc-status", grpcStatusOk]];
    if (!stream.headersSent) {
      // Trailers-only: one HEADERS frame with END_STREAM.
      stream.respond([...this.#responseHeaders(), ...trailers], true);
      return;
    }
    stream.end(trailers).catch(() => {});
  }

  /** The one request message of unary and server-streaming methods. */
  async #single(): Promise<unknown> {
    const first = await this.#nextMessage();
    if (first === null) {
      throw new ConnectError("protocol error: missing input message for unary method", Code.Internal);
    }
    if (await this.#nextMessage() !== null) {
      throw new ConnectError("protocol error: received extra input message for unary method", Code.Internal);
    }
    return first;
  }

  async *#inputs(): AsyncGenerator<unknown> {
    for (;;) {
      const msg = await this.#nextMessage();
      if (msg === null) return;
      yield msg;
    }
  }

  /** Reads one length-prefixed message from the request body; null at its end. */
  async #nextMessage(): Promise<unknown> {
    const reader = this.#reader;
    for (;;) {
      const body = nextEnvelope(reader);
      if (body !== undefined) {
        try {
          const msg = fromBinary(this.#m.method.input as DescMessage, body);
          this.#received++;
          return msg;
        } catch (err) {
          throw new ConnectError(
            `parse binary: ${err instanceof Error ? err.message : err}`,
            Code.Internal,
          );
        }
      }
      const chunk = await this.#stream.read();
      if (chunk === null) {
        if (reader.buffered > 0) {
          throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
        }
        return null;
      }
      reader.push(chunk);
    }
  }
}

/** The next request message, failing as Connect's gRPC handlers do. */
function nextEnvelope(reader: EnvelopeReader): Uint8Array | undefined {
  try {
    return reader.next();
  } catch (err) {
    if (!(err instanceof EnvelopeError)) throw err;
    if (err.reason === "too_large") throw new ConnectError(err.message, Code.ResourceExhausted);
    throw new ConnectError("protocol error: compressed message without grpc-encoding", Code.Internal);
  }
}

/** The parts of Connect's HandlerContext that handlers use, built lazily: most calls touch only a few. */
class FastContext {
  readonly method: DescMethod;
  readonly service: DescService;
  readonly requestMethod = "POST";
  readonly protocolName = "grpc";
  deadline: number | undefined;
  readonly #stream: H2ServerStream;
  #responseHeader: Headers | undefined;
  #responseTrailer: Headers | undefined;
  #values: ContextValues | undefined;

  constructor(stream: H2ServerStream, m: FastMethod) {
    this.#stream = stream;
    this.method = m.method;
    this.service = m.service;
  }

  get signal(): AbortSignal {
    return this.#stream.signal;
  }

  get requestHeader(): Headers {
    return this.#stream.requestHeader;
  }

  get url(): string {
    return `http://${this.#stream.authority || "localhost"}${this.#stream.path}`;
  }

  get responseHeader(): Headers {
    return this.#responseHeader ??= new Headers();
  }

  get responseTrailer(): Headers {
    return this.#responseTrailer ??= new Headers();
  }

  get responseHeaderIfAny(): Headers | undefined {
    return this.#responseHeader;
  }

  get responseTrailerIfAny(): Headers | undefined {
    return this.#responseTrailer;
  }

  get values(): ContextValues {
    return this.#values ??= createContextValues();
  }

  timeoutMs = (): number | undefined => this.deadline === undefined ? undefined : this.deadline - Date.now();
}
