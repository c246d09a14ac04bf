import { eventsPluginType } from "./ids.ts";
import type { EventBus } from "../core/events/mod.ts";
import type { PluginDef } from "./registry.ts";

/** The daemon's event exchange, as a plugin so services can require it. */
export function eventExchangePlugin(bus: EventBus): PluginDef<EventBus> {
  return { type: eventsPluginType, id: "exchange", init: () => bus };
}
