/**
 * Port forwarding over an upgraded connection (portforward.k8s.io), as the kubelet serves it: each
 * forwarded connection is a pair of streams the client opens, an error stream and a data stream with the
 * same `requestID` and `port` headers; once both are there the runtime joins the data stream to the
 * port, and a failure is written on the error stream. One session carries any number of pairs, one
 * after another or at once, until the client goes away.
 */

import type { BasicLogger } from "../../../base/log.ts";
import { SpdyConnection, type SpdyLimits, type SpdyStream, type SpdyTransport } from "./spdy/mod.ts";
import type { PortStream } from "./types.ts";

export const portForwardProtocols = ["portforward.k8s.io"] as const;

export interface PortForwardOptions {
  readonly podSandboxId: string;
  /** How long the second stream of a pair may take after the first (the kubelet's 30 s). */
  readonly streamCreationTimeoutMs: number;
  readonly limits?: Partial<SpdyLimits>;
  /** Bytes read past the HTTP request head. */
  readonly initial?: Uint8Array;
  /** The server is closing. */
  readonly signal: AbortSignal;
  readonly logger?: BasicLogger;
}

interface Pair {
  readonly requestId: string;
  error?: SpdyStream;
  data?: SpdyStream;
  timer?: ReturnType<typeof setTimeout>;
}

const enc = new TextEncoder();

/** A stream's `port` header: a decimal port number from 1 to 65535, or undefined. */
export function parsePort(value: string | undefined): number | undefined {
  if (value === undefined || !/^[0-9]{1,5}$/.test(value)) return undefined;
  const port = Number(value);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/**
 * Serves one port-forward session on `conn` (already upgraded); `forward` joins a stream to a port.
 * Resolves when the session is over and every forward it started has ended.
 */
export async function servePortForward(
  conn: SpdyTransport,
  options: PortForwardOptions,
  forward: (port: number, stream: PortStream) => Promise<void>,
): Promise<void> {
  const pairs = new Map<string, Pair>();
  const active = new Set<Promise<void>>();
  const idle = Promise.withResolvers<void>();
  let peerGoingAway = false;
  const maybeDone = () => {
    // A pair still waiting for its second stream will not get it after GOAWAY.
    if (peerGoingAway && active.size === 0) idle.resolve();
  };

  const start = (pair: Pair, port: number) => {
    const task = run(pair.data!, pair.error!, port, options, forward).finally(() => {
      active.delete(task);
      maybeDone();
    });
    active.add(task);
  };

  const session = new SpdyConnection(conn, {
    limits: options.limits,
    initial: options.initial,
    onGoaway: () => {
      peerGoingAway = true;
      maybeDone();
    },
    onStream: (stream) => {
      const port = parsePort(stream.header("port"));
      const type = stream.header("streamType");
      if (port === undefined || (type !== "error" && type !== "data")) {
        options.logger?.warn(
          `Refused a port-forward stream to pod sandbox ${options.podSandboxId}: port ${
            JSON.stringify(stream.header("port"))
          }, streamType ${JSON.stringify(type)}`,
        );
        return false;
      }
      const requestId = stream.header("requestID") ?? legacyRequestId(stream.id, type);
      let pair = pairs.get(requestId);
      if (!pair) {
        const created: Pair = pair = { requestId };
        pairs.set(requestId, pair);
        created.timer = setTimeout(() => {
          pairs.delete(requestId);
          abandon(created, `Timed out waiting for the streams of port-forward request ${requestId}`);
          maybeDone();
        }, options.streamCreationTimeoutMs);
      }
      if (pair[type]) {
        report(pair.error, `Port-forward request ${requestId} already has a ${type} stream`);
        return false;
      }
      pair[type] = stream;
      if (pair.error && pair.data) {
        clearTimeout(pair.timer);
        pairs.delete(requestId);
        // The data stream's port is the one forwarded, as in the kubelet.
        start(pair, parsePort(pair.data.header("port"))!);
      }
      return true;
    },
  });

  const stop = options.signal;
  const onStop = () => session.destroy("The streaming server is closing");
  stop.addEventListener("abort", onStop, { once: true });
  try {
    await Promise.race([idle.promise, session.closed]);
  } finally {
    stop.removeEventListener("abort", onStop);
    for (const pair of pairs.values()) clearTimeout(pair.timer);
    await session.close();
    await Promise.allSettled(active);
  }
}

/**
 * Clients older than the requestID header (kubelet's fallback): an error stream and the data stream
 * opened right after it share the error stream's id.
 */
function legacyRequestId(streamId: number, type: "error" | "data"): string {
  return String(type === "error" ? streamId : streamId - 2);
}

async function run(
  data: SpdyStream,
  error: SpdyStream,
  port: number,
  options: PortForwardOptions,
  forward: (port: number, stream: PortStream) => Promise<void>,
): Promise<void> {
  try {
    await forward(port, { readable: data.readable, writable: data.writable, signal: data.signal });
  } catch (err) {
    const message = `Cannot forward port ${port} of pod sandbox ${options.podSandboxId}: ${
      err instanceof Error ? err.message : String(err)
    }`;
    options.logger?.warn(message);
    report(error, message);
  } finally {
    await data.end().catch(() => {});
    await error.end().catch(() => {});
  }
}

function report(error: SpdyStream | undefined, message: string): void {
  error?.write(enc.encode(message)).catch(() => {});
}

function abandon(pair: Pair, message: string): void {
  report(pair.error, message);
  pair.error?.end().catch(() => {});
  pair.data?.reset();
}
