import { create } from "@bufbuild/protobuf";
import { now } from "../base/clock.ts";
import { nanosFromTimestamp, timestampFromNanos } from "../base/timestamps.ts";
import type { EventBus } from "../core/events/mod.ts";
import { parseFilters } from "../core/filters/mod.ts";
import { invalidArgument } from "../base/errors.ts";
import { Events } from "../gen/services/events/v1/events_pb.ts";
import { EnvelopeSchema } from "../gen/types/event_pb.ts";
import { eventsPluginType, grpcPluginType } from "../plugins/ids.ts";
import type { GrpcService, PluginDef } from "../plugins/registry.ts";
import { namespaceOf } from "./context.ts";

export const eventsServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: "events",
  requires: [eventsPluginType],
  init(ic) {
    const bus = ic.get<EventBus>(eventsPluginType);
    return {
      register: (router) =>
        router.service(Events, {
          publish: (req, ctx) => {
            if (!req.event) {
              throw invalidArgument(`Cannot publish to "${req.topic}": the request has no event`);
            }
            bus.forward({
              timestamp: now(),
              namespace: namespaceOf(ctx),
              topic: req.topic,
              event: req.event,
            });
            return {};
          },
          forward: (req) => {
            const env = req.envelope;
            if (!env?.event) throw invalidArgument("Cannot forward an envelope without an event");
            bus.forward({
              timestamp: env.timestamp ? nanosFromTimestamp(env.timestamp) : now(),
              namespace: env.namespace,
              topic: env.topic,
              event: env.event,
            });
            return {};
          },
          async *subscribe(req, ctx) {
            const filter = parseFilters(req.filters);
            for await (const env of bus.subscribe({ filter, signal: ctx.signal })) {
              yield create(EnvelopeSchema, {
                timestamp: timestampFromNanos(env.timestamp),
                namespace: env.namespace,
                topic: env.topic,
                event: env.event,
              });
            }
          },
        }),
    };
  },
};
