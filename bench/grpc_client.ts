/** gRPC clients over a daemon's unix socket (Version, and the CRI's services), as any Deno program would use them. */

import * as net from "node:net";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { ImageService, RuntimeService } from "../src/gen/k8s/cri/runtime/v1/api_pb.ts";
import { Version } from "../src/gen/services/version/v1/version_pb.ts";
import { Introspection } from "../src/gen/services/introspection/v1/introspection_pb.ts";

export type VersionClient = Client<typeof Version>;

/**
 * One HTTP/2 connection to socket, opened lazily by the first call. `close()` drops the socket the
 * way a client process that exits does, without a GOAWAY frame: the transport's own abort() sends
 * GOAWAY(CANCEL), which is a separate behaviour for the daemon's tests, not for a benchmark.
 */
export function unixTransport(socket: string): { transport: Transport; close(): void } {
  const conns: net.Socket[] = [];
  // Our own session manager so that close() also ends its ping and idle timers.
  const sessionManager = new Http2SessionManager("http://localhost", undefined, {
    createConnection: () => {
      const s = net.connect(socket);
      conns.push(s);
      return s;
    },
  });
  return {
    transport: createGrpcTransport({ baseUrl: "http://localhost", sessionManager }),
    close: () => {
      for (const s of conns) s.destroy();
      sessionManager.abort();
    },
  };
}

export function versionClient(socket: string): { client: VersionClient; close(): void } {
  const { transport, close } = unixTransport(socket);
  return { client: createClient(Version, transport), close };
}

export interface CriClients {
  readonly runtime: Client<typeof RuntimeService>;
  readonly images: Client<typeof ImageService>;
  close(): void;
}

/** The kubelet's two CRI clients, on one connection to socket. */
export function criClients(socket: string): CriClients {
  const { transport, close } = unixTransport(socket);
  return {
    runtime: createClient(RuntimeService, transport),
    images: createClient(ImageService, transport),
    close,
  };
}

/**
 * Calls Version once on a fresh connection; the answer, or the error that stopped it.
 * A fresh connection each time because a refused one would otherwise be cached by the transport.
 */
export async function tryVersion(
  socket: string,
  options: { timeoutMs: number },
): Promise<{ version: string; revision: string } | Error> {
  const { client, close } = versionClient(socket);
  try {
    const r = await client.version({}, { timeoutMs: options.timeoutMs });
    return { version: r.version, revision: r.revision };
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  } finally {
    close();
  }
}

/**
 * Lists the daemon's plugins once, which Berth answers only when every plugin has started (it answers
 * Version sooner); containerd answers at once, as its socket listens only then.
 */
export async function listPlugins(socket: string, options: { timeoutMs: number }): Promise<number> {
  const { transport, close } = unixTransport(socket);
  try {
    return (await createClient(Introspection, transport).plugins({}, { timeoutMs: options.timeoutMs }))
      .plugins
      .length;
  } finally {
    close();
  }
}

/** Milliseconds of each of `calls` sequential Version calls on one connection, after `warmup` unmeasured ones. */
export async function versionLatencies(
  socket: string,
  options: { calls: number; warmup: number; signal?: AbortSignal },
): Promise<number[]> {
  const { client, close } = versionClient(socket);
  try {
    const out: number[] = [];
    for (let i = 0; i < options.warmup + options.calls; i++) {
      options.signal?.throwIfAborted();
      const t0 = performance.now();
      await client.version({}, { timeoutMs: 5_000 });
      if (i >= options.warmup) out.push(performance.now() - t0);
    }
    return out;
  } finally {
    close();
  }
}
