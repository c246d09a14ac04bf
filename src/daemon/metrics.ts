import { failedPrecondition, invalidArgument } from "../base/errors.ts";
import type { Logger } from "./log.ts";
import type { CallRecord, CallStart } from "./server.ts";
import { Histogram } from "./metrics/histogram.ts";
import type { GrpcSeries, ScrapeSources } from "./metrics/sources.ts";

/** Bounds of the event loop's lag, in seconds: a healthy loop stays under a millisecond or two. */
const LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const LAG_PROBE_MS = 500;

/**
 * The daemon's Prometheus endpoint (`[metrics] address`, served at /v1/metrics like containerd's).
 * Counting calls is all it does until scraped: the families, their sources and both exposition formats
 * are imported at the first scrape (metrics/scrape.ts), so a daemon's start pays nothing for them.
 */
export class Metrics {
  readonly #grpc = new Map<string, GrpcSeries>();
  readonly #histogram: boolean;
  readonly lag = new Histogram(LAG_BUCKETS);
  #sources: ScrapeSources | undefined;

  /** `grpcHistogram`: containerd's `[metrics] grpc_histogram`, timing every call. */
  constructor(options: { grpcHistogram?: boolean } = {}) {
    this.#histogram = options.grpcHistogram ?? false;
  }

  /** Pre-registers every method, as go-grpc-prometheus' Register does: each shows with zeros. */
  registerMethods(methods: readonly CallStart[]): void {
    for (const m of methods) this.#series(m);
  }

  /** What a scrape reads beyond the calls: the task manager, metadata, GC and pulls. */
  attach(sources: ScrapeSources): void {
    this.#sources = sources;
  }

  get grpc(): ReadonlyMap<string, GrpcSeries> {
    return this.#grpc;
  }

  /** The API server's `onStart` hook. */
  readonly started = (call: CallStart): void => {
    this.#series(call).started++;
  };

  /** The API server's `onCall` hook: every call as it finishes, with its code and messages. */
  readonly record = (call: CallRecord): void => {
    const s = this.#series(call);
    s.received += call.received;
    s.sent += call.sent;
    s.handled[call.code] = (s.handled[call.code] ?? 0) + 1;
    s.seconds?.observe(call.ms / 1000);
  };

  #series(call: CallStart): GrpcSeries {
    const key = `${call.service}/${call.method}`;
    let s = this.#grpc.get(key);
    if (!s) {
      s = {
        call: { service: call.service, method: call.method, kind: call.kind },
        started: 0,
        received: 0,
        sent: 0,
        handled: [],
        seconds: this.#histogram ? new Histogram() : undefined,
      };
      this.#grpc.set(key, s);
    }
    return s;
  }

  /** The exposition the Accept header asks for (text 0.0.4 or OpenMetrics), and its content type. */
  async render(accept: string | null = null): Promise<{ body: string; contentType: string }> {
    const { scrape } = await import("./metrics/scrape.ts");
    return await scrape({ grpc: this.#grpc, lag: this.lag }, this.#sources, accept);
  }

  /** Serves /v1/metrics on `address` (host:port); returns a function that stops it. */
  serve(address: string, log: Logger): () => Promise<void> {
    const i = address.lastIndexOf(":");
    const hostname = i > 0 ? address.slice(0, i).replace(/^\[|\]$/g, "") : "127.0.0.1";
    const port = Number(address.slice(i + 1));
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw invalidArgument(`Invalid metrics address "${address}": use host:port, e.g. 127.0.0.1:1338`);
    }
    let server: Deno.HttpServer;
    try {
      server = this.#listen(hostname, port, address, log);
    } catch (err) {
      throw failedPrecondition(`Cannot serve metrics on ${address}: ${(err as Error).message}`);
    }
    const stopProbe = this.#probeLag();
    return () => {
      stopProbe();
      return server.shutdown();
    };
  }

  /** Measures how late a timer fires, as the event loop's lag (Berth's analogue of Go's scheduler latency). */
  #probeLag(): () => void {
    let due = performance.now() + LAG_PROBE_MS;
    const timer = setInterval(() => {
      const now = performance.now();
      this.lag.observe(Math.max(0, now - due) / 1000);
      due = now + LAG_PROBE_MS;
    }, LAG_PROBE_MS);
    Deno.unrefTimer(timer);
    return () => clearInterval(timer);
  }

  #listen(hostname: string, port: number, address: string, log: Logger): Deno.HttpServer {
    return Deno.serve(
      { hostname, port, onListen: () => log.info("serving metrics", { address }) },
      async (req) => {
        const { pathname } = new URL(req.url);
        if (pathname !== "/v1/metrics" && pathname !== "/metrics") {
          return new Response("not found\n", { status: 404 });
        }
        try {
          const { body, contentType } = await this.render(req.headers.get("accept"));
          return new Response(body, { headers: { "content-type": contentType } });
        } catch (err) {
          log.error("cannot gather metrics", { error: (err as Error).message });
          return new Response(`Cannot gather metrics: ${(err as Error).message}\n`, { status: 500 });
        }
      },
    );
  }
}
