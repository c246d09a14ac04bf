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
  /** Joins a stream to a port of the pod; resolves when both directions ended. */
  readonly forward: (port: number, stream: PortStream) => Promise<void>;
  /** How long the second stream of a pair may take after the first (the kubelet's 30 s). */
  readonly streamCreationTimeoutMs: number;
  readonly limits?: Partial<SpdyLimits>;
  /** Bytes read past the HTTP request head. */
  readonly initial?: Uint8Array;
  /** The server is closing. */
  readonly signal: AbortSignal;
  readonly logger?: BasicLogger;
}

/** A forwarded connection's streams, while the second one is awaited. */
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

/** Serves one port-forward session on `conn` (already upgraded); resolves when it and its forwards ended. */
export async function servePortForward(conn: SpdyTransport, options: PortForwardOptions): Promise<void> {
  await new PortForwardSession(conn, options).run();
}

class PortForwardSession {
  readonly #options: PortForwardOptions;
  readonly #session: SpdyConnection;
  readonly #pairs = new Map<string, Pair>();
  readonly #active = new Set<Promise<void>>();
  /** Resolves once the client sent GOAWAY and no forward is running. */
  readonly #finished = Promise.withResolvers<void>();
  #peerGoingAway = false;

  constructor(conn: SpdyTransport, options: PortForwardOptions) {
    this.#options = options;
    this.#session = new SpdyConnection(conn, {
      limits: options.limits,
      initial: options.initial,
      onStream: (stream) => this.#onStream(stream),
      onGoaway: () => {
        this.#peerGoingAway = true;
        this.#maybeFinished();
      },
    });
  }

  async run(): Promise<void> {
    const stop = this.#options.signal;
    const onStop = () => this.#session.destroy("The streaming server is closing");
    stop.addEventListener("abort", onStop, { once: true });
    try {
      await Promise.race([this.#finished.promise, this.#session.closed]);
    } finally {
      stop.removeEventListener("abort", onStop);
      for (const pair of this.#pairs.values()) clearTimeout(pair.timer);
      await this.#session.close();
      await Promise.allSettled(this.#active);
    }
  }

  /** Accepts a stream into its pair (starting the forward once both are there) or refuses it. */
  #onStream(stream: SpdyStream): boolean {
    const port = parsePort(stream.header("port"));
    const type = stream.header("streamType");
    if (port === undefined || (type !== "error" && type !== "data")) {
      this.#options.logger?.warn(
        `Refused a port-forward stream to pod sandbox ${this.#options.podSandboxId}: ` +
          `port ${JSON.stringify(stream.header("port"))}, streamType ${JSON.stringify(type)}`,
      );
      return false;
    }
    const requestId = stream.header("requestID") ?? legacyRequestId(stream.id, type);
    const pair = this.#pairs.get(requestId) ?? this.#newPair(requestId);
    if (pair[type]) {
      report(pair.error, `Port-forward request ${requestId} already has a ${type} stream`);
      return false;
    }
    pair[type] = stream;
    if (pair.error && pair.data) {
      clearTimeout(pair.timer);
      this.#pairs.delete(requestId);
      // The data stream's port is the one forwarded, as in the kubelet.
      this.#start(pair.data, pair.error, parsePort(pair.data.header("port"))!);
    }
    return true;
  }

  #newPair(requestId: string): Pair {
    const pair: Pair = { requestId };
    this.#pairs.set(requestId, pair);
    pair.timer = setTimeout(() => {
      this.#pairs.delete(requestId);
      report(pair.error, `Timed out waiting for the streams of port-forward request ${requestId}`);
      pair.error?.end().catch(() => {});
      pair.data?.reset();
    }, this.#options.streamCreationTimeoutMs);
    return pair;
  }

  #start(data: SpdyStream, error: SpdyStream, port: number): void {
    const task: Promise<void> = this.#forward(data, error, port).finally(() => {
      this.#active.delete(task);
      this.#maybeFinished();
    });
    this.#active.add(task);
  }

  async #forward(data: SpdyStream, error: SpdyStream, port: number): Promise<void> {
    const { podSandboxId, forward, logger } = this.#options;
    try {
      await forward(port, { readable: data.readable, writable: data.writable, signal: data.signal });
    } catch (err) {
      const message = `Cannot forward port ${port} of pod sandbox ${podSandboxId}: ${
        err instanceof Error ? err.message : String(err)
      }`;
      logger?.warn(message);
      report(error, message);
    } finally {
      await data.end().catch(() => {});
      await error.end().catch(() => {});
    }
  }

  #maybeFinished(): void {
    // A pair still waiting for its second stream will not get it after GOAWAY.
    if (this.#peerGoingAway && this.#active.size === 0) this.#finished.resolve();
  }
}

/**
 * Clients older than the requestID header (the kubelet's fallback): an error stream and the data stream
 * opened right after it share the error stream's id.
 */
function legacyRequestId(streamId: number, type: "error" | "data"): string {
  return String(type === "error" ? streamId : streamId - 2);
}

/** Writes `message` on a pair's error stream; it goes before the stream's end, whenever that comes. */
function report(error: SpdyStream | undefined, message: string): void {
  error?.write(enc.encode(message)).catch(() => {});
}
