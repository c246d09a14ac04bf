import { now } from "../base/clock.ts";
import { nanosFromTimestamp } from "../base/timestamps.ts";
import type { EventBus } from "../core/events/mod.ts";
import { failedPrecondition, invalidArgument } from "../base/errors.ts";
import { Events } from "../gen/services/ttrpc/events/v1/events_pb.ts";
import { TtrpcServer } from "../ttrpc/mod.ts";
import type { Logger } from "./log.ts";
import { claimSocketPath } from "./socket.ts";

/**
 * The daemon's ttrpc endpoint for shims (`<grpc address>.ttrpc`, containerd's TTRPC_ADDRESS): shims
 * publish task events with `Events.Forward`, which puts them on the daemon's bus unchanged.
 */
export class TtrpcEventsServer {
  readonly #server: TtrpcServer;
  readonly path: string;

  private constructor(server: TtrpcServer, path: string) {
    this.#server = server;
    this.path = path;
  }

  /**
   * `uid`/`gid` own the socket, mode 0660, as containerd's: with no `[ttrpc] address` (Berth has none)
   * containerd gives `<address>.ttrpc` the `[grpc]` uid and gid.
   */
  static async listen(
    path: string,
    options: { bus: EventBus; log: Logger; uid?: number; gid?: number },
  ): Promise<TtrpcEventsServer> {
    const server = new TtrpcServer({
      onError: (err) => options.log.debug("ttrpc events connection failed", { error: String(err) }),
    });
    server.register(Events, {
      forward(req) {
        const env = req.envelope;
        if (!env?.event) throw invalidArgument("Cannot forward an envelope without an event");
        options.bus.forward({
          timestamp: env.timestamp ? nanosFromTimestamp(env.timestamp) : now(),
          namespace: env.namespace,
          topic: env.topic,
          event: env.event,
        });
        return {};
      },
    });
    // A daemon killed earlier leaves its socket behind; one a live daemon serves is not ours to take.
    await claimSocketPath(path);
    try {
      server.listen(path);
    } catch (err) {
      throw failedPrecondition(`Cannot listen on ${path}: ${(err as Error).message}`);
    }
    try {
      Deno.chmodSync(path, 0o660);
      if (options.uid || options.gid) Deno.chownSync(path, options.uid ?? 0, options.gid ?? 0);
    } catch (err) {
      await server.close();
      throw failedPrecondition(`Cannot set the owner and mode of ${path}: ${(err as Error).message}`);
    }
    return new TtrpcEventsServer(server, path);
  }

  close(): Promise<void> {
    return this.#server.close({ graceMs: 1000 });
  }
}
