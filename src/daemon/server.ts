import * as http2 from "node:http2";
import * as net from "node:net";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { errorInterceptor } from "../services/errors.ts";
import type { Logger } from "./log.ts";
import { failedPrecondition } from "../core/errdefs/mod.ts";
import { filterGoaway } from "./goaway_filter.ts";

export interface ApiServerOptions {
  /** Unix socket path. */
  address: string;
  routes: (router: ConnectRouter) => void;
  log: Logger;
  /** Socket file mode; containerd uses 0660. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Interceptors outside the error mapping (they see wire codes), e.g. metrics. */
  interceptors?: Interceptor[];
}

const maxMessageBytes = 16 << 20;

/** gRPC and Connect over HTTP/2 cleartext on a unix socket: the daemon's API endpoint. */
export class ApiServer {
  readonly #server: http2.Http2Server;
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #options: ApiServerOptions;
  readonly #listener: net.Server;
  #listening = false;

  constructor(options: ApiServerOptions) {
    this.#options = options;
    const log = options.log;
    const handler = connectNodeAdapter({
      routes: options.routes,
      interceptors: [...(options.interceptors ?? []), errorInterceptor],
      readMaxBytes: maxMessageBytes,
      writeMaxBytes: maxMessageBytes,
      fallback: unimplementedFallback,
    });
    this.#server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, handler);
    // Connections are accepted here and handed to the HTTP/2 server through the GOAWAY filter.
    this.#listener = net.createServer((socket) => this.#server.emit("connection", filterGoaway(socket)));
    this.#server.on("session", (session: http2.ServerHttp2Session) => {
      this.#sessions.add(session);
      session.on("error", (err) => log.debug("http2 session error", { error: err.message }));
      session.on("close", () => this.#sessions.delete(session));
    });
    this.#server.on("sessionError", (err) => log.debug("http2 session error", { error: err.message }));
    this.#server.on("error", (err) => log.error("api server error", { error: err.message }));
  }

  async listen(): Promise<void> {
    const { address } = this.#options;
    await removeStaleSocket(address);
    await Deno.mkdir(dirname(address), { recursive: true, mode: 0o711 });
    await new Promise<void>((resolve, reject) => {
      this.#listener.once("error", reject);
      this.#listener.listen(address, () => {
        this.#listener.off("error", reject);
        resolve();
      });
    });
    this.#listening = true;
    await Deno.chmod(address, this.#options.mode ?? 0o660);
    if (this.#options.uid || this.#options.gid) {
      await Deno.chown(address, this.#options.uid ?? 0, this.#options.gid ?? 0);
    }
  }

  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then cuts what remains. */
  async close(graceMs = 2000): Promise<void> {
    if (!this.#listening) return;
    this.#listening = false;
    const closed = new Promise<void>((resolve) => this.#listener.close(() => resolve()));
    for (const s of this.#sessions) s.close();
    const timer = setTimeout(() => {
      for (const s of this.#sessions) s.destroy();
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

/** Debug log of every call: method, namespace, duration and outcome (streams: until they opened). */
export function callLogger(log: Logger): Interceptor {
  return (next) => async (req) => {
    const start = performance.now();
    const fields = {
      method: `${req.service.typeName}/${req.method.name}`,
      namespace: req.header.get("containerd-namespace") ?? "",
    };
    try {
      const res = await next(req);
      log.debug("call", { ...fields, ms: +(performance.now() - start).toFixed(2) });
      return res;
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      log.debug("call failed", { ...fields, ms: +(performance.now() - start).toFixed(2), error });
      throw err;
    }
  };
}

/**
 * Unknown methods get a trailers-only gRPC answer with status 12, which gRPC clients understand;
 * an HTTP 404 would surface as a transport error. Connect-protocol callers get Connect's JSON error.
 */
function unimplementedFallback(req: http2.Http2ServerRequest | unknown, res: unknown): void {
  const request = req as http2.Http2ServerRequest;
  const response = res as http2.Http2ServerResponse;
  const type = request.headers["content-type"] ?? "";
  const message = `unknown method ${request.url}`;
  // Drain the request so the stream closes cleanly on both sides.
  request.resume();
  if (type.startsWith("application/grpc") && !type.startsWith("application/grpc-web")) {
    // Trailers-only: one HEADERS frame with END_STREAM carrying the status.
    response.stream.respond({
      ":status": 200,
      "content-type": "application/grpc",
      "grpc-status": "12",
      "grpc-message": encodeURIComponent(message),
    }, { endStream: true });
    return;
  }
  response.writeHead(404, { "content-type": "application/json" });
  response.end(JSON.stringify({ code: "unimplemented", message }));
}

/** A socket held by a live daemon is an error; one left behind by a dead daemon is removed. */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    const info = await Deno.lstat(path);
    if (!info.isSocket) {
      throw failedPrecondition(`Cannot listen on ${path}: a file that is not a socket is in the way`);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  const alive = await new Promise<boolean>((resolve) => {
    const sock = net.connect(path);
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
  if (alive) {
    throw failedPrecondition(
      `Cannot listen on ${path}: another daemon is serving it; stop it or pick another --address`,
    );
  }
  await Deno.remove(path);
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}
