/**
 * A ttrpc server: serves registered protobuf services (GenService descriptors) over unix socket
 * connections. Unary methods only; a streaming method answers Unimplemented, as does an unknown
 * service or method, like containerd's ttrpc.
 */

import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { alreadyExists } from "../base/errors.ts";
import { deadline } from "../base/timers.ts";
import { type Frame, FrameReader, FrameWriter, MAX_MESSAGE_LENGTH, MessageType } from "./frame.ts";
import { decodeRequest, encodeResponse, type Metadata, statusOf, type TtrpcRequest } from "./messages.ts";
import { Code, codeOf, messageOf, TtrpcError } from "./status.ts";

export interface TtrpcHandlerContext {
  readonly service: string;
  readonly method: string;
  /** Aborted at the client's deadline, when the connection ends, or when the server is closed. */
  readonly signal: AbortSignal;
  readonly metadata: Readonly<Metadata>;
}

export type TtrpcServiceImpl<S extends DescService> = {
  [K in keyof S["method"]]: (
    request: MessageShape<S["method"][K]["input"]>,
    ctx: TtrpcHandlerContext,
  ) => Promise<MessageInitShape<S["method"][K]["output"]>> | MessageInitShape<S["method"][K]["output"]>;
};

type AnyHandler = (request: unknown, ctx: TtrpcHandlerContext) => unknown;

interface Route {
  readonly method: DescMethod;
  readonly handler: AnyHandler | undefined;
}

/**
 * Per-connection bounds against a peer that writes requests and never reads the replies (issue 14: a
 * flood of 300k frames grew a shim to 742 MB). Reading pauses while this many replies or bytes are
 * queued unwritten; it resumes as they drain.
 */
const PAUSE_QUEUED_REPLIES = 1024;
const PAUSE_QUEUED_BYTES = 1 << 20;
/** Past this many unwritten bytes (handlers that were running when reading paused), the peer is cut off. */
const CLOSE_QUEUED_BYTES = 16 << 20;
/** A paused peer that reads no reply for this long is cut off. */
const CLOSE_STALLED_MS = 5_000;
/**
 * Calls running at once on one connection; more are answered ResourceExhausted rather than left waiting,
 * since a legitimate daemon may hold a Wait per task open on a shared shim's connection.
 */
const MAX_CALLS_PER_CONNECTION = 4096;

/**
 * Status messages echo what the peer sent (`service <name>`, `Container "<id>" not found`). Uncut, a
 * 4 MiB name was copied into a status too large to send, which dropped the connection instead of
 * answering it (as containerd's does), and 8 connections sending such names at once took a daemon from
 * 69 to 333 MiB (issue 14's fuzz test).
 */
const MAX_STATUS_MESSAGE = 4096;

/**
 * Frames from this size are freed as soon as they are dispatched rather than left to the garbage
 * collector, which lets ~64 MiB of unreachable ArrayBuffers pile up before it frees any: 8 connections
 * sending 4 MiB frames that end in an error status took a daemon from 69 to 250-330 MiB (issue 14's
 * fuzz test).
 */
const RELEASE_FRAMES_FROM = 64 << 10;

export interface TtrpcServerOptions {
  /** Told about connection-level failures that have no caller to report to. */
  readonly onError?: (err: unknown) => void;
}

export class TtrpcServer {
  readonly #services = new Map<string, Map<string, Route>>();
  readonly #listeners = new Set<Deno.Listener>();
  readonly #conns = new Set<Deno.Conn>();
  readonly #inflight = new Set<Promise<void>>();
  readonly #shutdown = new AbortController();
  readonly #socketPaths: string[] = [];
  readonly #onError: (err: unknown) => void;
  /** Accept loops and live connections, each dropped when it ends: a daemon serves shims for months. */
  readonly #serving = new Set<Promise<void>>();

  constructor(options: TtrpcServerOptions = {}) {
    this.#onError = options.onError ?? (() => {});
  }

  /** Registers a service; methods missing from `impl` answer Unimplemented. */
  register<S extends DescService>(service: S, impl: Partial<TtrpcServiceImpl<S>>): void {
    if (this.#services.has(service.typeName)) {
      throw alreadyExists(`Service ${service.typeName} is already registered`);
    }
    const routes = new Map<string, Route>();
    for (const method of service.methods) {
      const handler = (impl as Record<string, AnyHandler | undefined>)[method.localName];
      routes.set(method.name, {
        method,
        handler: typeof handler === "function" ? handler.bind(impl) : undefined,
      });
    }
    this.#services.set(service.typeName, routes);
  }

  /** Listens on a unix socket path (which must not exist) and serves it until close(). */
  listen(path: string): Deno.UnixAddr {
    const listener = Deno.listen({ transport: "unix", path });
    this.#socketPaths.push(path);
    this.serve(listener);
    return listener.addr as Deno.UnixAddr;
  }

  /** Serves an existing listener until close(). */
  serve(listener: Deno.Listener): void {
    this.#listeners.add(listener);
    this.#track((async () => {
      try {
        for await (const conn of listener) this.serveConn(conn);
      } catch (err) {
        if (!this.#shutdown.signal.aborted) this.#onError(err);
      } finally {
        this.#listeners.delete(listener);
      }
    })());
  }

  /** Serves one connection; resolves when it ends. */
  serveConn(conn: Deno.Conn): Promise<void> {
    this.#conns.add(conn);
    const done = new ServerConn(conn, this.#services, this.#shutdown.signal, this.#inflight, this.#onError)
      .run()
      .finally(() => this.#conns.delete(conn));
    this.#track(done);
    return done;
  }

  /** Number of accept loops and connections still being served. */
  get serving(): number {
    return this.#serving.size;
  }

  #track(p: Promise<void>): void {
    this.#serving.add(p);
    p.finally(() => this.#serving.delete(p)).catch(() => {});
  }

  /**
   * Removes the socket files this server created and stops accepting, gives in-flight calls up to
   * `graceMs` to answer, then aborts them and closes every connection. The files go first: a client
   * that finds nothing listening may bind a new server at the same path at once (the daemon's spare
   * shim does), and a removal after the grace would take that server's file.
   */
  async close(options: { graceMs?: number } = {}): Promise<void> {
    for (const p of this.#socketPaths.splice(0)) {
      try {
        Deno.removeSync(p);
      } catch { /* already gone */ }
    }
    for (const l of this.#listeners) l.close();
    if (this.#inflight.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled([...this.#inflight]),
        new Promise((r) => timer = setTimeout(r, options.graceMs ?? 3000)),
      ]);
      clearTimeout(timer);
    }
    this.#shutdown.abort(new DOMException("ttrpc server closed", "AbortError"));
    for (const c of this.#conns) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    await Promise.allSettled([...this.#serving]);
    await Promise.allSettled([...this.#inflight]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

class ServerConn {
  readonly #conn: Deno.Conn;
  readonly #services: ReadonlyMap<string, ReadonlyMap<string, Route>>;
  readonly #writer: FrameWriter;
  readonly #abort = new AbortController();
  readonly #inflight: Set<Promise<void>>;
  readonly #onError: (err: unknown) => void;
  #lastStreamId = 0;
  #calls = 0;
  #queuedReplies = 0;
  #queuedBytes = 0;
  /** Called when a queued reply has been written: the reader may be waiting for the queue to drain. */
  #drained: (() => void) | undefined;

  constructor(
    conn: Deno.Conn,
    services: ReadonlyMap<string, ReadonlyMap<string, Route>>,
    shutdown: AbortSignal,
    inflight: Set<Promise<void>>,
    onError: (err: unknown) => void,
  ) {
    this.#conn = conn;
    this.#services = services;
    this.#writer = new FrameWriter(conn);
    this.#inflight = inflight;
    this.#onError = onError;
    shutdown.addEventListener("abort", () => this.#abort.abort(shutdown.reason), {
      once: true,
      signal: this.#abort.signal,
    });
  }

  async run(): Promise<void> {
    const reader = new FrameReader(this.#conn);
    try {
      for (;;) {
        if (this.#congested()) await this.#drain();
        const frame = await reader.next();
        if (frame === null) break;
        this.#dispatch(frame);
        if (frame.data && frame.data.length >= RELEASE_FRAMES_FROM) frame.data.buffer.transfer(0);
      }
    } catch (err) {
      if (!this.#abort.signal.aborted) this.#onError(err);
    } finally {
      // The peer is gone: nobody will read answers, so running handlers are told to stop.
      this.#abort.abort(new DOMException("ttrpc connection closed", "AbortError"));
      try {
        this.#conn.close();
      } catch {
        // already closed
      }
    }
  }

  #congested(): boolean {
    return this.#queuedReplies >= PAUSE_QUEUED_REPLIES || this.#queuedBytes >= PAUSE_QUEUED_BYTES;
  }

  /** Stops reading until the peer has read enough replies; throws (ending the connection) if it reads none. */
  async #drain(): Promise<void> {
    while (this.#congested() && !this.#abort.signal.aborted) {
      const progressed = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), CLOSE_STALLED_MS);
        const done = () => {
          clearTimeout(timer);
          this.#abort.signal.removeEventListener("abort", done);
          resolve(true);
        };
        this.#drained = done;
        this.#abort.signal.addEventListener("abort", done);
      });
      this.#drained = undefined;
      if (!progressed) {
        throw new Error(
          `ttrpc peer read no reply for ${CLOSE_STALLED_MS} ms with ${this.#queuedReplies} queued: closing`,
        );
      }
    }
  }

  #dispatch(frame: Frame): void {
    const id = frame.streamId;
    if (frame.data === undefined) {
      return this.#status(
        id,
        Code.resourceExhausted,
        `message length ${frame.length} exceed maximum message size of ${MAX_MESSAGE_LENGTH}`,
      );
    }
    if (id % 2 !== 1) {
      return this.#status(id, Code.invalidArgument, "StreamID must be odd for client initiated streams");
    }
    if (frame.type === MessageType.data) {
      return this.#status(id, Code.invalidArgument, "StreamID is no longer active");
    }
    if (frame.type !== MessageType.request) return; // unknown types are ignored for forward compatibility
    if (id <= this.#lastStreamId) {
      return this.#status(id, Code.invalidArgument, "StreamID cannot be re-used and must increment");
    }
    this.#lastStreamId = id;
    let req: TtrpcRequest;
    try {
      req = decodeRequest(frame.data);
    } catch (err) {
      if (err instanceof TtrpcError) return this.#status(id, err.code, err.message);
      return this.#status(id, Code.invalidArgument, `unmarshal request error: ${messageOf(err)}`);
    }
    const routes = this.#services.get(req.service);
    if (!routes) return this.#status(id, Code.unimplemented, `service ${req.service}`);
    const route = routes.get(req.method);
    if (!route?.handler || route.method.methodKind !== "unary") {
      return this.#status(id, Code.unimplemented, `method ${req.method}`);
    }
    if (this.#calls >= MAX_CALLS_PER_CONNECTION) {
      return this.#status(
        id,
        Code.resourceExhausted,
        `more than ${MAX_CALLS_PER_CONNECTION} calls in flight`,
      );
    }
    this.#calls++;
    // A large frame is released once dispatched (run()): the call keeps a copy of just its payload.
    if (frame.data.length >= RELEASE_FRAMES_FROM) req.payload = req.payload.slice();
    const call = this.#handle(id, req, route.method, route.handler);
    this.#inflight.add(call);
    call.finally(() => {
      this.#calls--;
      this.#inflight.delete(call);
    });
  }

  async #handle(id: number, req: TtrpcRequest, method: DescMethod, handler: AnyHandler): Promise<void> {
    let input: unknown;
    try {
      input = fromBinary(method.input, req.payload);
    } catch (err) {
      return this.#status(id, Code.invalidArgument, `unmarshal request error: ${messageOf(err)}`);
    }
    // The request's deadline goes with the call (see base/timers.ts deadline()).
    const bound = req.timeoutNano > 0n
      ? deadline(Number(req.timeoutNano / 1_000_000n), this.#abort.signal)
      : undefined;
    const ctx: TtrpcHandlerContext = {
      service: req.service,
      method: req.method,
      signal: bound?.signal ?? this.#abort.signal,
      metadata: req.metadata,
    };
    let payload: Uint8Array;
    try {
      const output = await handler(input, ctx);
      const schema = method.output as DescMessage;
      payload = toBinary(schema, create(schema, output as MessageInitShape<DescMessage>));
    } catch (err) {
      return this.#status(id, codeOf(err), messageOf(err));
    } finally {
      bound?.clear();
    }
    const body = encodeResponse({ status: statusOf(Code.ok, ""), payload });
    if (body.length > MAX_MESSAGE_LENGTH) {
      return this.#status(
        id,
        Code.resourceExhausted,
        `message length ${body.length} exceed maximum message size of ${MAX_MESSAGE_LENGTH}`,
      );
    }
    this.#send(id, body);
  }

  #status(id: number, code: number, message: string): void {
    if (message.length > MAX_STATUS_MESSAGE) message = `${message.slice(0, MAX_STATUS_MESSAGE)}…`;
    this.#send(id, encodeResponse({ status: statusOf(code, message), payload: new Uint8Array() }));
  }

  #send(id: number, body: Uint8Array): void {
    if (this.#abort.signal.aborted) return;
    if (this.#queuedBytes + body.length > CLOSE_QUEUED_BYTES) {
      this.#onError(new Error(`ttrpc peer left ${this.#queuedBytes} bytes of replies unread: closing`));
      return this.#cutOff();
    }
    this.#queuedReplies++;
    this.#queuedBytes += body.length;
    this.#writer.write(id, MessageType.response, 0, body).then(
      () => {
        this.#queuedReplies--;
        this.#queuedBytes -= body.length;
        this.#drained?.();
      },
      (err) => {
        this.#queuedReplies--;
        this.#queuedBytes -= body.length;
        if (!this.#abort.signal.aborted) this.#onError(err);
        this.#cutOff();
      },
    );
  }

  /** Closes the connection: the reader ends, handlers are aborted, queued writes fail and are dropped. */
  #cutOff(): void {
    this.#abort.abort(new DOMException("ttrpc connection closed", "AbortError"));
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}
