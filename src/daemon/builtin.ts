import type { EventBus } from "../core/events/mod.ts";
import { criServicePlugin } from "../services/cri_plugin.ts";
import { eventsServicePlugin } from "../services/events.ts";
import {
  containersServicePlugin,
  contentServicePlugin,
  diffServicePlugin,
  imagesServicePlugin,
  leasesServicePlugin,
  snapshotsServicePlugin,
  tasksServicePlugin,
  transferServicePlugin,
} from "../services/plugins.ts";
import { namespacesServicePlugin } from "../services/namespaces.ts";
import { containerStorePlugin } from "../plugins/containers.ts";
import { contentStorePlugin } from "../plugins/content.ts";
import { walkingDifferPlugin } from "../plugins/diff.ts";
import { eventExchangePlugin } from "../plugins/events.ts";
import { gcSchedulerPlugin } from "../plugins/gc.ts";
import { imageStorePlugin } from "../plugins/images.ts";
import { leaseManagerPlugin } from "../plugins/leases.ts";
import { boltMetadataPlugin } from "../plugins/metadata.ts";
import { namespaceStorePlugin } from "../plugins/namespaces.ts";
import type { PluginDef, PluginRegistry } from "../plugins/registry.ts";
import { restartMonitorPlugin } from "../plugins/restart.ts";
import { runtimePlugin } from "../plugins/runtime.ts";
import {
  btrfsSnapshotterPlugin,
  nativeSnapshotterPlugin,
  overlaySnapshotterPlugin,
} from "../plugins/snapshots.ts";
import { transferPlugin } from "../plugins/transfer.ts";
import { runServicePlugin } from "./run_service.ts";

/** The built-in plugins that need no other and start before the API listens (see mod.ts). */
export interface EarlyPlugins {
  readonly version: PluginDef;
  readonly health: PluginDef;
  readonly introspection: PluginDef;
}

/**
 * Registers every built-in plugin, core parts first, then the gRPC services over them. The early ones,
 * registered already, take their places in that order (the order `plugins ls` shows). Loaded once the
 * API listens: this module's imports are most of the daemon's code.
 */
export function registerBuiltins(registry: PluginRegistry, bus: EventBus, early: EarlyPlugins): void {
  registry
    .register(eventExchangePlugin(bus))
    .register(boltMetadataPlugin)
    .register(contentStorePlugin)
    .register(namespaceStorePlugin)
    .register(leaseManagerPlugin)
    .register(imageStorePlugin)
    .register(overlaySnapshotterPlugin)
    .register(nativeSnapshotterPlugin)
    .register(btrfsSnapshotterPlugin)
    .register(walkingDifferPlugin)
    .register(containerStorePlugin)
    .register(runtimePlugin)
    .register(transferPlugin)
    .register(gcSchedulerPlugin)
    .register(restartMonitorPlugin)
    .register(early.version)
    .register(namespacesServicePlugin)
    .register(eventsServicePlugin)
    .register(contentServicePlugin)
    .register(leasesServicePlugin)
    .register(imagesServicePlugin)
    .register(snapshotsServicePlugin)
    .register(diffServicePlugin)
    .register(containersServicePlugin)
    .register(tasksServicePlugin)
    .register(transferServicePlugin)
    .register(runServicePlugin)
    .register(criServicePlugin)
    .register(early.health)
    .register(early.introspection);
}
