import {
  Code,
  ConnectError,
  type ConnectRouter,
  createConnectRouter,
  type Interceptor,
} from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import type { DescMethod } from "@bufbuild/protobuf";
import { errorInterceptor } from "../services/errors.ts";
import type { Logger } from "./log.ts";
import { ConnSocket, H2ServerConnection, type H2ServerStream } from "../h2/server/mod.ts";
import { claimSocketPath, listenUnix } from "./socket.ts";
import { compressionBrotli, compressionGzip } from "./h2/compression.ts";
import { answerError, answerUnknown, serveUniversal } from "./h2/universal.ts";
import { createHttp1Server, type Http1Server } from "./h2/http1.ts";
import { GrpcFastPath, type RecordedRoutes, recordingRouter } from "./h2/grpc_fast.ts";
import type { InflightCall } from "./debug.ts";

/** A method as metrics label it: go-grpc-prometheus's grpc_service, grpc_method and grpc_type. */
export interface CallStart {
  service: string;
  method: string;
  kind: DescMethod["methodKind"];
}

/** One finished API call, as metrics and the call log see it. */
export interface CallRecord extends CallStart {
  namespace: string;
  /** gRPC code; 0 is OK. */
  code: Code | 0;
  ms: number;
  error?: string;
  /** Request messages read and response messages sent (go-grpc-prometheus' msg_received/msg_sent). */
  received: number;
  sent: number;
}

export interface ApiServerOptions {
  /** Unix socket path. */
  address: string;
  routes: (router: ConnectRouter) => void;
  log: Logger;
  /** Socket file mode; containerd uses 0660. */
  mode?: number;
  uid?: number;
  gid?: number;
  /**
   * Interceptors outside the error mapping (they see wire codes). They run on the Connect protocol layer
   * only, so any given here turn the gRPC fast path off; prefer `onCall`.
   */
  interceptors?: Interceptor[];
  /** Told about every finished call (streams: when they end), on every protocol. */
  onCall?: (call: CallRecord) => void;
  /** Told about every call as it starts, on every protocol (only with `onCall`). */
  onStart?: (call: CallStart) => void;
  /** Routes registered on their first call rather than at start-up. */
  deferred?: readonly DeferredRoutes[];
  /**
   * Listening before the rest of the routes exist (the daemon's plugins still start): a call to a path
   * `routes` did not register waits for open(), which brings the others.
   */
  held?: boolean;
  /** How long the API must have had no call before warm() loads the next deferred routes. */
  warmQuietMs?: number;
}

/**
 * Services whose code is loaded when a call first needs them: a call to a path under one of `prefixes`
 * waits for `load` (run once), and is then served by the routes it registered, or answered as an unknown
 * method when the load failed.
 */
export interface DeferredRoutes {
  /** Request path prefixes, e.g. `/runtime.v1.`. */
  readonly prefixes: readonly string[];
  load(): Promise<(router: ConnectRouter) => void>;
  /** Loaded by warm(), not only on a first call. */
  readonly warm?: boolean;
}

const maxMessageBytes = 16 << 20;

/**
 * warm() loads a service only after the API has had no call for this long. Each load blocks the event
 * loop for a few ms; made back to back at start-up they delayed a first client's calls by ~6 ms.
 */
const WARM_QUIET_MS = 30;

/**
 * gRPC and Connect over HTTP/2 cleartext on a unix socket: the daemon's API endpoint. HTTP/2 is served by
 * our own connection code (src/h2/server); plain gRPC calls skip Connect's protocol layer; HTTP/1.1
 * connections go to node:http, loaded when the first one arrives.
 */
export class ApiServer {
  readonly #options: ApiServerOptions;
  #listener: Deno.UnixListener | undefined;
  /** Settles when the accept loop has ended. */
  #accepting: Promise<void> | undefined;
  readonly #routes: RecordedRoutes;
  /** Connect's router (HTTP/1.1, Connect, gRPC-web, compressed gRPC), made for the first call that needs it. */
  #connect: ConnectRouter | undefined;
  readonly #handlers = new Map<string, UniversalHandler>();
  readonly #fast: GrpcFastPath | undefined;
  /** Deferred routes by prefix, and their load once started (settles after their routes are in). */
  readonly #deferred: { readonly routes: DeferredRoutes; loading?: Promise<void> }[];
  /** Settles when open() has brought the rest of the routes, or close() ends the wait. */
  readonly #opened = Promise.withResolvers<void>();
  #held: boolean;
  readonly #conns = new Set<H2ServerConnection>();
  readonly #sockets = new Set<ConnSocket>();
  /** Called when the last open socket closes (close() waits for it). */
  #onAllClosed: (() => void) | undefined;
  #http1: Promise<Http1Server> | undefined;
  #listening = false;
  /** Calls being served, and when one last started or ended: warm() loads only while the API is quiet. */
  #calls = 0;
  #lastCall = 0;
  /** Unary calls served while held (not waiting for routes), and who waits for none to be (unaryDone()). */
  #unary = 0;
  #onUnaryDone: (() => void)[] = [];
  /** warm()'s wait for quiet, ended early by close(). */
  #warmWait: { timer: ReturnType<typeof setTimeout>; resolve: () => void } | undefined;

  constructor(options: ApiServerOptions) {
    this.#options = options;
    const recorder = this.#routes = recordingRouter();
    options.routes(recorder.router);
    this.#deferred = (options.deferred ?? []).map((routes) => ({ routes }));
    this.#held = options.held ?? false;
    if (!this.#held) this.#opened.resolve();
    if ((options.interceptors ?? []).length === 0) {
      this.#fast = new GrpcFastPath(recorder.methods, {
        maxMessageBytes,
        onCall: options.onCall,
        onStart: options.onCall && options.onStart,
      });
    }
  }

  /**
   * The Connect handler of a registered path. Connect's router is made on first need: making its handlers
   * for every method cost ~4 ms of each daemon start, and plain gRPC (ctr, Go clients) never uses them.
   */
  #universal(path: string): UniversalHandler | undefined {
    if (!this.#connect) {
      const options = this.#options;
      const interceptors = [...(options.interceptors ?? [])];
      if (options.onCall) interceptors.unshift(reportingInterceptor(options.onCall, options.onStart));
      this.#connect = createConnectRouter({
        interceptors: [...interceptors, errorInterceptor],
        readMaxBytes: maxMessageBytes,
        writeMaxBytes: maxMessageBytes,
        acceptCompression: [compressionGzip, compressionBrotli],
      });
      this.#routes.replay(this.#connect);
    }
    // Deferred routes loaded since the last call add handlers.
    if (this.#handlers.size !== this.#connect.handlers.length) {
      for (const h of this.#connect.handlers) this.#handlers.set(h.requestPath, h);
    }
    return this.#handlers.get(path);
  }

  /**
   * The rest of the routes of a server made `held`: calls that waited for them are served now (or
   * answered as unknown methods when no route serves them).
   */
  open(routes: (router: ConnectRouter) => void, deferred: readonly DeferredRoutes[] = []): void {
    if (!this.#held) throw new Error("ApiServer.open: the server was not made held");
    routes(this.#routes.router);
    this.#deferred.push(...deferred.map((routes) => ({ routes })));
    this.#held = false;
    this.#opened.resolve();
  }

  /** Every method served so far (deferred routes once loaded), as metrics pre-register them. */
  get methods(): readonly CallStart[] {
    return [...this.#routes.methods.values()].map((m) => ({
      service: m.service.typeName,
      method: m.method.name,
      kind: m.method.methodKind,
    }));
  }

  /**
   * Loads the deferred routes marked `warm`, one at a time, each once the API has been quiet for
   * `warmQuietMs`: what the first calls did not need loads in the pauses between clients, and a call that
   * needs it sooner loads it itself.
   */
  async warm(): Promise<void> {
    for (const d of this.#deferred) {
      if (!d.routes.warm) continue;
      await this.#quiet();
      if (!this.#listening) return;
      await this.#loadDeferred(d.routes.prefixes[0]!);
    }
  }

  /**
   * Settles once no unary call that started while the server was held is being served (at once when
   * none is): start-up work that can wait (the daemon's other plugins) lets a call that arrived meanwhile
   * finish first. Streams do not count.
   */
  unaryDone(): Promise<void> {
    if (this.#unary === 0) return Promise.resolve();
    return new Promise((resolve) => this.#onUnaryDone.push(resolve));
  }

  /** Settles once no call has been served for `warmQuietMs`, or the server has closed. */
  async #quiet(): Promise<void> {
    const quietMs = this.#options.warmQuietMs ?? WARM_QUIET_MS;
    while (this.#listening) {
      const idle = performance.now() - this.#lastCall;
      if (this.#calls === 0 && idle >= quietMs) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#warmWait = undefined;
          resolve();
        }, this.#calls === 0 ? quietMs - idle : quietMs);
        this.#warmWait = { timer, resolve };
      });
    }
  }

  #accept(socket: ConnSocket): void {
    this.#sockets.add(socket);
    socket.once("close", () => {
      this.#sockets.delete(socket);
      if (this.#sockets.size === 0) this.#onAllClosed?.();
    });
    // A client that exits mid-call is routine (ConnSocket reports it as a close), not worth a log line.
    socket.on(
      "error",
      (err: Error) => this.#options.log.debug("api connection error", { error: err.message }),
    );
    let head: Uint8Array = new Uint8Array(0);
    const sniff = (chunk: Uint8Array) => {
      head = head.length === 0 ? chunk : concat(head, chunk);
      // "PRI" starts the HTTP/2 preface and no HTTP/1.1 method.
      if (head.length < 3) return;
      socket.off("data", sniff);
      if (head[0] === 0x50 && head[1] === 0x52 && head[2] === 0x49) this.#serveH2(socket, head);
      else this.#serveH1(socket, head);
    };
    socket.on("data", sniff);
  }

  #serveH2(socket: ConnSocket, first: Uint8Array): void {
    const log = this.#options.log;
    const conn: H2ServerConnection = new H2ServerConnection(socket, {
      onStream: (stream) => this.#dispatch(stream),
      onClose: () => this.#conns.delete(conn),
      onError: (err) => log.debug("http2 connection error", { error: err.message }),
    });
    this.#conns.add(conn);
    if (!this.#listening) conn.close();
    conn.receive(first);
  }

  /** Starts the stream's handler; the promise settles when it has finished. */
  #dispatch(stream: H2ServerStream): Promise<void> | void {
    this.#calls++;
    this.#lastCall = performance.now();
    // Counted only while held (the daemon's start, when unaryDone() is asked): no lookup per call after.
    const unary = this.#held && this.#routes.methods.get(stream.path)?.method.methodKind === "unary";
    if (unary) this.#unary++;
    const done = () => {
      this.#calls--;
      this.#lastCall = performance.now();
      if (unary && --this.#unary === 0) { for (const fn of this.#onUnaryDone.splice(0)) fn(); }
    };
    let served: Promise<void> | void;
    try {
      served = this.#serve(stream);
    } catch (err) {
      done();
      throw err;
    }
    if (!(served instanceof Promise)) return done();
    return served.finally(done);
  }

  #serve(stream: H2ServerStream): Promise<void> | void {
    if (this.#held && !this.#routes.paths.has(stream.path)) {
      // The request body waits in the stream's flow-control window meanwhile.
      return this.#opened.promise.then(() => this.#held ? answerStarting(stream) : this.#serve(stream));
    }
    if (!this.#routes.paths.has(stream.path)) {
      const loading = this.#loadDeferred(stream.path);
      if (!loading) return answerUnknown(stream);
      // The request body waits in the stream's flow-control window meanwhile.
      return loading.then(() =>
        this.#routes.paths.has(stream.path) ? this.#serve(stream) : answerUnknown(stream)
      );
    }
    const fast = this.#fast?.serve(stream);
    if (fast) return fast;
    const handler = this.#universal(stream.path);
    if (!handler) return answerUnknown(stream);
    return serveUniversal(stream, handler, (err) => {
      this.#options.log.error("api handler failed", {
        method: `${handler.service.typeName}/${handler.method.name}`,
        error: err instanceof Error ? err.message : String(err),
      });
    });
  }

  /**
   * The load of the deferred routes serving `path`, started on first need; undefined when none serve it.
   * Never rejects: a failed load is logged and leaves the path unknown.
   */
  #loadDeferred(path: string): Promise<void> | undefined {
    const d = this.#deferred.find((d) => d.routes.prefixes.some((p) => path.startsWith(p)));
    if (!d) return undefined;
    d.loading ??= d.routes.load().then((register) => register(this.#routes.router), (err) => {
      this.#options.log.error("cannot load the service", {
        prefixes: d.routes.prefixes.join(","),
        error: err instanceof Error ? err.message : String(err),
      });
    });
    return d.loading;
  }

  /** The handler of `path`, once its deferred routes are loaded when it needs them. */
  #handlerOf(path: string): UniversalHandler | Promise<UniversalHandler | undefined> | undefined {
    if (this.#held && !this.#routes.paths.has(path)) {
      return this.#opened.promise.then(() => this.#held ? undefined : this.#handlerOf(path));
    }
    if (this.#routes.paths.has(path)) return this.#universal(path);
    return this.#loadDeferred(path)?.then(() =>
      this.#routes.paths.has(path) ? this.#universal(path) : undefined
    );
  }

  #serveH1(socket: ConnSocket, first: Uint8Array): void {
    socket.pause();
    this.#http1 ??= createHttp1Server((path) => this.#handlerOf(path), (err, method) => {
      this.#options.log.error("api handler failed", {
        method,
        error: err instanceof Error ? err.message : String(err),
      });
    });
    this.#http1.then((h1) => h1.serve(socket, first), (err) => {
      this.#options.log.error("cannot serve HTTP/1.1", {
        error: err instanceof Error ? err.message : String(err),
      });
      socket.destroy();
    });
  }

  /**
   * Open connections, and the calls in flight on them as their HTTP/2 streams show them: read when asked,
   * so that calls pay nothing for it. HTTP/1.1 calls (curl) are counted as connections only.
   */
  activity(): { connections: number; calls: InflightCall[] } {
    const now = performance.now();
    const calls: InflightCall[] = [];
    for (const conn of this.#conns) {
      for (const s of conn.openStreams()) {
        const namespace = s.header("containerd-namespace") ?? "";
        calls.push({ method: s.path.slice(1), namespace, ageMs: Math.round(now - s.openedAt) });
      }
    }
    return { connections: this.#sockets.size, calls };
  }

  async listen(): Promise<void> {
    const { address } = this.#options;
    await claimSocketPath(address);
    const listener = listenUnix(address);
    this.#listener = listener;
    this.#listening = true;
    this.#lastCall = performance.now();
    this.#accepting = (async () => {
      try {
        for await (const conn of listener) this.#accept(new ConnSocket(conn));
      } catch (err) {
        if (this.#listening) {
          this.#options.log.error("api listener failed", { address, error: (err as Error).message });
        }
      }
    })();
    await Deno.chmod(address, this.#options.mode ?? 0o660);
    if (this.#options.uid || this.#options.gid) {
      await Deno.chown(address, this.#options.uid ?? 0, this.#options.gid ?? 0);
    }
  }

  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then cuts what remains. */
  async close(graceMs = 2000): Promise<void> {
    if (!this.#listening) return;
    this.#listening = false;
    // Calls that waited for the rest of the routes are answered: the daemon did not start.
    this.#opened.resolve();
    if (this.#warmWait) {
      clearTimeout(this.#warmWait.timer);
      this.#warmWait.resolve();
      this.#warmWait = undefined;
    }
    try {
      this.#listener?.close();
    } catch { /* already closed */ }
    // Closed once the accept loop has ended and every accepted socket has closed.
    const closed = Promise.all([
      this.#accepting,
      this.#sockets.size === 0 ? undefined : new Promise<void>((resolve) => this.#onAllClosed = resolve),
    ]);
    for (const c of this.#conns) c.close();
    this.#http1?.then((h1) => h1.closeIdle(), () => {});
    const timer = setTimeout(() => {
      for (const s of this.#sockets) s.destroy();
    }, graceMs);
    try {
      await closed;
    } finally {
      clearTimeout(timer);
      try {
        await Deno.remove(this.#options.address);
      } catch { /* already gone */ }
    }
  }
}

/** A call that waited for routes of a daemon whose start then failed. */
function answerStarting(stream: H2ServerStream): void {
  answerError(
    stream,
    { grpc: 14, connect: "unavailable", http: 503 },
    `${stream.path.slice(1)} is not served: the daemon stopped while it was starting`,
  );
}

/** Reports calls served by Connect's protocol layer (HTTP/1.1, Connect, gRPC-web, compressed gRPC). */
function reportingInterceptor(
  onCall: (call: CallRecord) => void,
  onStart?: (call: CallStart) => void,
): Interceptor {
  return (next) => async (req) => {
    const start = performance.now();
    const call: CallStart = {
      service: req.service.typeName,
      method: req.method.name,
      kind: req.method.methodKind,
    };
    onStart?.(call);
    const counts = { received: 0, sent: 0 };
    const report = (err?: unknown) => {
      const e = err === undefined ? undefined : ConnectError.from(err);
      onCall({
        ...call,
        namespace: req.header.get("containerd-namespace") ?? "",
        code: e ? e.code : 0,
        ms: performance.now() - start,
        error: e?.rawMessage,
        ...counts,
      });
    };
    if (req.stream) req = { ...req, message: countStream(req.message, counts, "received") };
    else counts.received = 1;
    try {
      const res = await next(req);
      if (!res.stream) {
        counts.sent = 1;
        report();
        return res;
      }
      return { ...res, message: reportStream(countStream(res.message, counts, "sent"), report) };
    } catch (err) {
      report(err);
      throw err;
    }
  };
}

async function* countStream<T>(
  it: AsyncIterable<T>,
  counts: { received: number; sent: number },
  which: "received" | "sent",
): AsyncIterable<T> {
  for await (const m of it) {
    counts[which]++;
    yield m;
  }
}

async function* reportStream<T>(it: AsyncIterable<T>, report: (err?: unknown) => void): AsyncIterable<T> {
  try {
    yield* it;
    report();
  } catch (err) {
    report(err);
    throw err;
  }
}

/** Debug log of every call: method, namespace, duration and outcome. */
export function callLogger(log: Logger): (call: CallRecord) => void {
  return (call) => {
    const fields = {
      method: `${call.service}/${call.method}`,
      namespace: call.namespace,
      ms: +call.ms.toFixed(2),
    };
    if (call.code === 0) log.debug("call", fields);
    else log.debug("call failed", { ...fields, error: call.error ?? "" });
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
