/**
 * The daemon's debug endpoint (containerd's `[debug] address`, where containerd serves pprof): HTTP on a
 * unix socket.
 *
 *   GET /debug/vars    JSON of internal counters: connections, calls in flight, shims, tasks, memory, uptime
 *   GET /debug/calls   the API calls in flight: method, namespace, age
 *   GET /debug/heap    writes a V8 heap snapshot under the state folder and answers its path
 *
 * SIGUSR1 writes the vars and calls to the log (containerd dumps its goroutine stacks there), so a daemon
 * without a debug socket can still be looked into.
 */

import type { Logger } from "./log.ts";
import { claimSocketPath } from "./socket.ts";
import { failedPrecondition } from "../base/errors.ts";
import { version } from "../version.ts";

/** An API call still running. */
export interface InflightCall {
  /** `service/Method`, e.g. `containerd.services.tasks.v1.Tasks/Wait`. */
  method: string;
  namespace: string;
  ageMs: number;
}

/** What the debug endpoint reads from the running daemon, each time it is asked. */
export interface DebugSources {
  /** Open API connections and the calls in flight on them. */
  api(): { connections: number; calls: InflightCall[] };
  /** Shim processes and tasks of the runtime, when its plugin is loaded. */
  runtime(): { shims: number; tasks: number } | undefined;
}

export interface DebugVars {
  version: string;
  pid: number;
  uptime_seconds: number;
  connections: number;
  calls_in_flight: number;
  shims: number | null;
  tasks: number | null;
  memory: Deno.MemoryUsage;
}

export interface DebugEndpointOptions {
  /** The daemon's state folder: heap snapshots go to `<state>/debug/`. */
  state: string;
  log: Logger;
}

export class DebugEndpoint {
  readonly #sources: DebugSources;
  readonly #options: DebugEndpointOptions;
  readonly #started = performance.now();
  #server: Deno.HttpServer | undefined;
  #address = "";

  constructor(sources: DebugSources, options: DebugEndpointOptions) {
    this.#sources = sources;
    this.#options = options;
  }

  vars(): DebugVars {
    const api = this.#sources.api();
    const runtime = this.#sources.runtime();
    return {
      version,
      pid: Deno.pid,
      uptime_seconds: Math.round((performance.now() - this.#started) / 10) / 100,
      connections: api.connections,
      calls_in_flight: api.calls.length,
      shims: runtime?.shims ?? null,
      tasks: runtime?.tasks ?? null,
      memory: Deno.memoryUsage(),
    };
  }

  /** The calls in flight, oldest first. */
  calls(): InflightCall[] {
    return this.#sources.api().calls.sort((a, b) => b.ageMs - a.ageMs);
  }

  /**
   * Writes a heap snapshot to `<state>/debug/berth-<time>-<pid>.heapsnapshot` and returns its path. The
   * daemon stops while V8 walks its heap (a second or so): this is for looking into a leak, not for a
   * scraper. node:v8 is loaded on the first snapshot only.
   */
  async heapSnapshot(): Promise<string> {
    const dir = `${this.#options.state}/debug`;
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const { writeHeapSnapshot } = await import("node:v8");
    const path = writeHeapSnapshot(`${dir}/berth-${stamp}-${Deno.pid}.heapsnapshot`);
    this.#options.log.info("wrote heap snapshot", { path });
    return path;
  }

  /** SIGUSR1: the vars and the calls in flight, to the log. */
  dump(): void {
    const calls = this.calls();
    this.#options.log.info("debug dump", { vars: this.vars(), calls });
  }

  /** Serves HTTP on the unix socket `address`; a taken address fails naming it. */
  async serve(address: string): Promise<void> {
    await claimSocketPath(address);
    const log = this.#options.log;
    try {
      this.#server = Deno.serve(
        { path: address, onListen: () => log.info("serving debug", { address }) },
        (req) => this.#answer(req),
      );
    } catch (err) {
      throw failedPrecondition(`Cannot serve debug on ${address}: ${(err as Error).message}`);
    }
    this.#address = address;
    // Like the API socket: the operator's tools may read it, nobody else.
    await Deno.chmod(address, 0o660);
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    await server.shutdown();
    await Deno.remove(this.#address).catch(() => {});
  }

  async #answer(req: Request): Promise<Response> {
    if (req.method !== "GET") return new Response("Only GET is served here\n", { status: 405 });
    switch (new URL(req.url).pathname) {
      case "/debug/vars":
        return Response.json(this.vars());
      case "/debug/calls":
        return Response.json(this.calls());
      case "/debug/heap":
        try {
          return Response.json({ path: await this.heapSnapshot() });
        } catch (err) {
          const error = `Cannot write a heap snapshot: ${(err as Error).message}`;
          this.#options.log.error("debug heap snapshot failed", { error });
          return Response.json({ error }, { status: 500 });
        }
      default:
        return new Response("Not found: try /debug/vars, /debug/calls or /debug/heap\n", { status: 404 });
    }
  }
}
