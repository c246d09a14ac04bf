import type { EventBus } from "../core/events/mod.ts";
import { eventsServicePlugin } from "../services/events.ts";
import { healthServicePlugin } from "../services/health.ts";
import { introspectionServicePlugin } from "../services/introspection.ts";
import { namespacesServicePlugin } from "../services/namespaces.ts";
import { versionServicePlugin } from "../services/version.ts";
import { eventExchangePlugin } from "./events.ts";
import { namespaceStorePlugin } from "./namespaces.ts";
import { PluginRegistry } from "./registry.ts";

/** Every built-in plugin, in containerd's registration order where it matters. */
export function builtinRegistry(bus: EventBus): PluginRegistry {
  const registry = new PluginRegistry();
  registry
    .register(eventExchangePlugin(bus))
    .register(namespaceStorePlugin)
    .register(versionServicePlugin)
    .register(namespacesServicePlugin)
    .register(eventsServicePlugin)
    .register(healthServicePlugin)
    .register(introspectionServicePlugin(registry));
  return registry;
}
