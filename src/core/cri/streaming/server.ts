/**
 * The CRI streaming server: what containerd's CRI plugin serves on stream_server_address and
 * stream_server_port for Exec, Attach and PortForward. A CRI call stores its request and returns a
 * single-use URL (`http://<addr>/exec/<token>`, `/attach/<token>`, `/portforward/<token>`); the client
 * (the kubelet's proxy, kubectl, crictl) upgrades an HTTP request to that URL to SPDY/3.1 and the
 * session runs against the StreamingRuntime.
 */

import { failedPrecondition, invalidArgument } from "../../../base/errors.ts";
import type { BasicLogger } from "../../../base/log.ts";
import {
  checkSpdyUpgrade,
  encodeResponse,
  encodeSpdyUpgrade,
  type HeadLimits,
  HttpError,
  negotiateProtocol,
  readRequestHead,
  type RequestHead,
  writeAll,
} from "./http1.ts";
import { portForwardProtocols, servePortForward } from "./portforward.ts";
import { remoteCommandProtocols, serveRemoteCommand } from "./remotecommand.ts";
import { RequestCache, type RequestCacheOptions } from "./request_cache.ts";
import type { SpdyLimits } from "./spdy/mod.ts";
import { internalError, nonZeroExit, type Status, success } from "./status.ts";
import type {
  AttachRequest,
  ExecRequest,
  PortForwardRequest,
  StreamingIO,
  StreamingRuntime,
} from "./types.ts";

export interface StreamingServerOptions {
  readonly runtime: StreamingRuntime;
  /** containerd's stream_server_address (default 127.0.0.1). */
  readonly address?: string;
  /** containerd's stream_server_port; 0 (the default) takes a free port. */
  readonly port?: number;
  /** The URL the handed-out paths are resolved against; default `http://<address>:<port>`. */
  readonly baseUrl?: string;
  /** containerd's stream_idle_timeout (default 4 h): a session without traffic for this long ends. */
  readonly streamIdleTimeoutMs?: number;
  /** How long a client has to open its streams after the upgrade (the kubelet's 30 s). */
  readonly streamCreationTimeoutMs?: number;
  readonly tokens?: RequestCacheOptions;
  /** Limits of each SPDY session; `idleTimeoutMs` there is overridden by streamIdleTimeoutMs. */
  readonly spdy?: Partial<SpdyLimits>;
  readonly head?: Partial<HeadLimits>;
  /** Connections served at once; more are answered 503 and closed. */
  readonly maxConnections?: number;
  readonly logger?: BasicLogger;
}

type Pending =
  | { readonly kind: "exec"; readonly request: ExecRequest }
  | { readonly kind: "attach"; readonly request: AttachRequest }
  | { readonly kind: "portforward"; readonly request: PortForwardRequest };

const defaultHeadLimits: HeadLimits = { maxBytes: 16 * 1024, maxHeaders: 100, timeoutMs: 10_000 };
const ROUTE = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]+)$/;

export class StreamingServer {
  readonly #options: StreamingServerOptions;
  readonly #runtime: StreamingRuntime;
  readonly #cache: RequestCache<Pending>;
  readonly #headLimits: HeadLimits;
  readonly #closing = new AbortController();
  /** Connections still reading their request head: closed by close(), as they have no session yet. */
  readonly #unupgraded = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  #listener: Deno.TcpListener | undefined;
  #accepting: Promise<void> | undefined;
  #baseUrl: URL | undefined;

  constructor(options: StreamingServerOptions) {
    this.#options = options;
    this.#runtime = options.runtime;
    this.#cache = new RequestCache(options.tokens);
    this.#headLimits = { ...defaultHeadLimits, ...options.head };
  }

  /** Listens; URLs can be handed out from now on. */
  start(): Promise<void> {
    if (this.#listener) throw failedPrecondition("The streaming server is already started");
    const hostname = this.#options.address ?? "127.0.0.1";
    const listener = this.#listener = Deno.listen({ hostname, port: this.#options.port ?? 0 });
    const addr = listener.addr;
    const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
    this.#baseUrl = new URL(this.#options.baseUrl ?? `http://${host}:${addr.port}/`);
    if (!this.#baseUrl.pathname.endsWith("/")) this.#baseUrl.pathname += "/";
    this.#accepting = this.#accept(listener);
    return Promise.resolve();
  }

  /** The address listened on. */
  get addr(): Deno.NetAddr {
    if (!this.#listener) throw failedPrecondition("The streaming server is not started");
    return this.#listener.addr;
  }

  /** The URL for a CRI ExecRequest (the ExecResponse's url). */
  getExec(request: ExecRequest): string {
    const what = `Cannot exec in container ${JSON.stringify(request.containerId)}`;
    checkStreams(what, request);
    if (request.cmd.length === 0) throw invalidArgument(`${what}: the command is empty`);
    return this.#hand({ kind: "exec", request: { ...request, cmd: [...request.cmd] } });
  }

  /** The URL for a CRI AttachRequest. */
  getAttach(request: AttachRequest): string {
    checkStreams(`Cannot attach to container ${JSON.stringify(request.containerId)}`, request);
    return this.#hand({ kind: "attach", request: { ...request } });
  }

  /** The URL for a CRI PortForwardRequest. */
  getPortForward(request: PortForwardRequest): string {
    if (!request.podSandboxId) throw invalidArgument("Cannot forward ports: the pod sandbox id is missing");
    return this.#hand({ kind: "portforward", request: { ...request, port: [...request.port ?? []] } });
  }

  /** Stops listening and ends every session (their runtimes see their signal abort). */
  async close(): Promise<void> {
    this.#closing.abort(new Error("The streaming server is closing"));
    try {
      this.#listener?.close();
    } catch { /* closed */ }
    await this.#accepting;
    for (const conn of this.#unupgraded) closeQuietly(conn);
    await Promise.allSettled([...this.#tasks]);
  }

  #hand(pending: Pending): string {
    if (!this.#baseUrl) throw failedPrecondition("The streaming server is not started");
    const token = this.#cache.insert(pending);
    return new URL(`${pending.kind}/${token}`, this.#baseUrl).href;
  }

  async #accept(listener: Deno.TcpListener): Promise<void> {
    const max = this.#options.maxConnections ?? 1000;
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch {
        return; // closed
      }
      if (this.#closing.signal.aborted) {
        closeQuietly(conn);
        return;
      }
      if (this.#tasks.size >= max) {
        this.#options.logger?.warn(`Refused a streaming connection: ${max} are open`);
        void refuse(conn, new HttpError(503, `The streaming server serves ${max} connections at most`));
        continue;
      }
      const task: Promise<void> = this.#serve(conn).finally(() => this.#tasks.delete(task));
      this.#tasks.add(task);
    }
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    this.#unupgraded.add(conn);
    try {
      const { head, rest } = await readRequestHead(conn, this.#headLimits);
      const { pending, protocol } = this.#route(head);
      await writeAll(conn, encodeSpdyUpgrade(protocol));
      this.#unupgraded.delete(conn);
      await this.#session(conn, pending, protocol, rest);
    } catch (err) {
      if (err instanceof HttpError && this.#unupgraded.has(conn)) await refuse(conn, err);
      else if (!this.#closing.signal.aborted) {
        this.#options.logger?.warn(
          `Streaming connection failed: ${err instanceof Error ? err.message : err}`,
        );
      }
    } finally {
      this.#unupgraded.delete(conn);
      closeQuietly(conn);
    }
  }

  /** The request a head names, and the protocol to speak; an HttpError when it names none. */
  #route(head: RequestHead): { pending: Pending; protocol: string } {
    const base = this.#baseUrl!.pathname;
    const path = head.path.startsWith(base) ? `/${head.path.slice(base.length)}` : "";
    const m = ROUTE.exec(path);
    if (!m) throw new HttpError(404, `No streaming endpoint at ${head.path}`);
    if (head.method !== "GET" && head.method !== "POST") {
      throw new HttpError(405, `Method ${head.method} not allowed on ${m[1]}`, [["Allow", "GET, POST"]]);
    }
    const pending = this.#cache.consume(m[2]!);
    if (!pending || pending.kind !== m[1]) {
      throw new HttpError(404, `Unknown, used or expired ${m[1]} token`);
    }
    const supported = pending.kind === "portforward" ? portForwardProtocols : remoteCommandProtocols;
    const protocol = negotiateProtocol(head, supported);
    checkSpdyUpgrade(head);
    return { pending, protocol };
  }

  #session(conn: Deno.TcpConn, pending: Pending, protocol: string, initial: Uint8Array): Promise<void> {
    const limits = {
      ...this.#options.spdy,
      idleTimeoutMs: this.#options.streamIdleTimeoutMs ?? 4 * 3600_000,
    };
    const common = {
      streamCreationTimeoutMs: this.#options.streamCreationTimeoutMs ?? 30_000,
      limits,
      initial,
      signal: this.#closing.signal,
      logger: this.#options.logger,
    };
    if (pending.kind === "portforward") {
      const { podSandboxId } = pending.request;
      return servePortForward(conn, {
        ...common,
        podSandboxId,
        forward: (port, stream) => this.#runtime.portForward(podSandboxId, port, stream),
      });
    }
    const r = pending.request;
    const streams = { protocol, stdin: !!r.stdin, stdout: !!r.stdout, stderr: !!r.stderr, tty: !!r.tty };
    if (pending.kind === "exec") {
      const { containerId, cmd } = pending.request;
      return serveRemoteCommand(conn, {
        ...common,
        ...streams,
        what: `exec in container ${containerId}`,
        run: (io) => this.#exec(containerId, cmd, io),
      });
    }
    const { containerId } = pending.request;
    return serveRemoteCommand(conn, {
      ...common,
      ...streams,
      what: `attach to container ${containerId}`,
      run: (io) => this.#attach(containerId, io),
    });
  }

  async #exec(containerId: string, cmd: readonly string[], io: StreamingIO): Promise<Status> {
    let code: number;
    try {
      code = await this.#runtime.exec(containerId, cmd, io);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#options.logger?.warn(`Exec in container ${containerId} failed: ${message}`);
      return internalError(`error executing command in container: ${message}`);
    }
    // The client parses the code as an unsigned byte.
    if (!Number.isInteger(code) || code < 0 || code > 255) {
      return internalError(`error executing command in container: exit code ${code} is not 0 to 255`);
    }
    return code === 0 ? success : nonZeroExit(cmd, code);
  }

  async #attach(containerId: string, io: StreamingIO): Promise<Status> {
    try {
      await this.#runtime.attach(containerId, io);
      return success;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#options.logger?.warn(`Attach to container ${containerId} failed: ${message}`);
      return internalError(`error attaching to container: ${message}`);
    }
  }
}

/** containerd's validateExecRequest / validateAttachRequest. */
function checkStreams(
  what: string,
  r: { containerId: string; tty?: boolean; stdin?: boolean; stdout?: boolean; stderr?: boolean },
): void {
  if (!r.containerId) throw invalidArgument(`${what}: the container id is missing`);
  // A terminal has one output: stderr cannot be told apart from stdout.
  if (r.tty && r.stderr) throw invalidArgument(`${what}: tty and stderr cannot both be set`);
  if (!r.stdin && !r.stdout && !r.stderr) {
    throw invalidArgument(`${what}: one of stdin, stdout and stderr must be set`);
  }
}

async function refuse(conn: Deno.Conn, err: HttpError): Promise<void> {
  try {
    await writeAll(conn, encodeResponse(err.status, { headers: err.headers, body: err.message + "\n" }));
  } catch { /* the client is gone */ }
  closeQuietly(conn);
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}
