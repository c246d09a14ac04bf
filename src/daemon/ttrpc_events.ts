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

  static async listen(path: string, options: { bus: EventBus; log: Logger }): Promise<TtrpcEventsServer> {
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
    return new TtrpcEventsServer(server, path);
  }

  close(): Promise<void> {
    return this.#server.close({ graceMs: 1000 });
  }
}
