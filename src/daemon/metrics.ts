import { failedPrecondition, invalidArgument } from "../base/errors.ts";
import { version } from "../version.ts";
import type { Logger } from "./log.ts";

/**
 * The daemon's Prometheus endpoint (`[metrics] address`, served at /v1/metrics like containerd's):
 * process figures and gRPC calls handled, by service, method and code.
 */
export class Metrics {
  readonly #handled = new Map<string, number>();
  readonly #started = Date.now();

  /** Counts every call the API server finishes, with its gRPC code (the API server's `onCall` hook). */
  readonly record = (call: { service: string; method: string; code: number }): void => {
    this.#count(call.service, call.method, codeName(call.code));
  };

  #count(service: string, method: string, code: string) {
    const key = `grpc_service="${service}",grpc_method="${method}",grpc_code="${code}"`;
    this.#handled.set(key, (this.#handled.get(key) ?? 0) + 1);
  }

  render(): string {
    const mem = Deno.memoryUsage();
    const lines = [
      "# HELP berth_build_info Berth's version.",
      "# TYPE berth_build_info gauge",
      `berth_build_info{version="${version}"} 1`,
      "# HELP process_resident_memory_bytes Resident memory of the daemon.",
      "# TYPE process_resident_memory_bytes gauge",
      `process_resident_memory_bytes ${mem.rss}`,
      "# HELP berth_heap_used_bytes V8 heap in use.",
      "# TYPE berth_heap_used_bytes gauge",
      `berth_heap_used_bytes ${mem.heapUsed}`,
      "# HELP process_start_time_seconds When the daemon started.",
      "# TYPE process_start_time_seconds gauge",
      `process_start_time_seconds ${Math.floor(this.#started / 1000)}`,
      "# HELP grpc_server_handled_total RPCs completed on the server, by code.",
      "# TYPE grpc_server_handled_total counter",
    ];
    for (const [labels, n] of [...this.#handled].sort()) {
      lines.push(`grpc_server_handled_total{${labels}} ${n}`);
    }
    return lines.join("\n") + "\n";
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
    return () => server.shutdown();
  }

  #listen(hostname: string, port: number, address: string, log: Logger): Deno.HttpServer {
    return Deno.serve(
      { hostname, port, onListen: () => log.info("serving metrics", { address }) },
      (req) => {
        const { pathname } = new URL(req.url);
        if (pathname !== "/v1/metrics" && pathname !== "/metrics") {
          return new Response("not found\n", {
            status: 404,
          });
        }
        return new Response(this.render(), { headers: { "content-type": "text/plain; version=0.0.4" } });
      },
    );
  }
}

const codeNames = [
  "OK",
  "Canceled",
  "Unknown",
  "InvalidArgument",
  "DeadlineExceeded",
  "NotFound",
  "AlreadyExists",
  "PermissionDenied",
  "ResourceExhausted",
  "FailedPrecondition",
  "Aborted",
  "OutOfRange",
  "Unimplemented",
  "Internal",
  "Unavailable",
  "DataLoss",
  "Unauthenticated",
];

function codeName(code: number): string {
  return codeNames[code] ?? String(code);
}
