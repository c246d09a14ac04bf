/**
 * HTTP/1.1 (curl's Connect JSON calls, gRPC-web from browsers' proxies) stays on node:http with connect-node's
 * request/response adapters. Both are imported on the first HTTP/1.1 connection, so a daemon that only
 * sees HTTP/2 never loads them (nor node's compatibility layer). node:http takes the connection as a
 * node:stream Duplex over the daemon's socket.
 */

import type * as http from "node:http";
import type { Duplex } from "node:stream";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { type ServerSocket, whenDrained } from "../../h2/server/mod.ts";

export interface Http1Server {
  /** Serves a socket whose first bytes were already read (they are unshifted back). */
  serve(socket: ServerSocket, first: Uint8Array): void;
  closeIdle(): void;
}

/** A request path's handler; a promise while the routes serving it are still being loaded. */
export type HandlerLookup = (
  path: string,
) => UniversalHandler | Promise<UniversalHandler | undefined> | undefined;

export async function createHttp1Server(
  handlerOf: HandlerLookup,
  onError: (err: unknown, method: string) => void,
): Promise<Http1Server> {
  const [
    { createServer },
    { Duplex },
    { universalRequestFromNodeRequest, universalResponseToNodeResponse },
    { Code, ConnectError },
  ] = await Promise.all([
    import("node:http"),
    import("node:stream"),
    import("@connectrpc/connect-node"),
    import("@connectrpc/connect"),
  ]);
  const serve = (
    handler: UniversalHandler | undefined,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ) => {
    if (!handler) return unknownMethod(req, res);
    const uReq = universalRequestFromNodeRequest(req, res, undefined, undefined);
    handler(uReq).then((uRes) => universalResponseToNodeResponse(uRes, res)).catch((err) => {
      if (ConnectError.from(err).code !== Code.Aborted) {
        onError(err, `${handler.service.typeName}/${handler.method.name}`);
      }
    });
  };
  const server = createServer((req: http.IncomingMessage, res: http.ServerResponse) => {
    const found = handlerOf(req.url?.split("?", 1)[0] ?? "");
    if (found instanceof Promise) found.then((h) => serve(h, req, res));
    else serve(found, req, res);
  });
  return {
    serve(socket, first) {
      server.emit("connection", duplexOf(Duplex, socket, first));
    },
    closeIdle() {
      server.closeIdleConnections();
    },
  };
}

function unknownMethod(req: http.IncomingMessage, res: http.ServerResponse): void {
  const type = req.headers["content-type"] ?? "";
  const message = `unknown method ${req.url}`;
  req.resume();
  if (type.startsWith("application/grpc") && !type.startsWith("application/grpc-web")) {
    // gRPC needs HTTP/2; an HTTP/1.1 caller gets the status in headers, which is all HTTP/1.1 can carry.
    res.writeHead(200, {
      "content-type": "application/grpc",
      "grpc-status": "12",
      "grpc-message": encodeURIComponent(message),
    });
    res.end();
    return;
  }
  res.writeHead(404, { "content-type": "application/json" });
  res.end(JSON.stringify({ code: "unimplemented", message }));
}

/** The socket as the Duplex node:http reads requests from, `first` (already read) first. */
function duplexOf(DuplexClass: typeof Duplex, socket: ServerSocket, first: Uint8Array): Duplex {
  const duplex: Duplex = new DuplexClass({
    read() {
      socket.resume();
    },
    write(chunk: Uint8Array, _encoding, done) {
      if (socket.write(chunk)) return done();
      whenDrained(socket).then(() => done());
    },
    final(done) {
      socket.end();
      done();
    },
    destroy(err, done) {
      socket.destroy();
      done(err);
    },
  });
  socket.pause();
  socket.on("data", (chunk) => {
    if (!duplex.push(chunk)) socket.pause();
  });
  socket.on("end", () => duplex.push(null));
  socket.on("close", () => duplex.destroy());
  duplex.push(first);
  return duplex;
}
