import type { EventBus } from "../core/events/mod.ts";
import { criServicePlugin } from "../services/cri_plugin.ts";
import { eventsServicePlugin } from "../services/events.ts";
import { healthServicePlugin } from "../services/health.ts";
import { introspectionServicePlugin } from "../services/introspection.ts";
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
import { versionServicePlugin } from "../services/version.ts";
import { containerStorePlugin } from "../plugins/containers.ts";
import { contentStorePlugin } from "../plugins/content.ts";
import { walkingDifferPlugin } from "../plugins/diff.ts";
import { eventExchangePlugin } from "../plugins/events.ts";
import { gcSchedulerPlugin } from "../plugins/gc.ts";
import { imageStorePlugin } from "../plugins/images.ts";
import { leaseManagerPlugin } from "../plugins/leases.ts";
import { boltMetadataPlugin } from "../plugins/metadata.ts";
import { namespaceStorePlugin } from "../plugins/namespaces.ts";
import { PluginRegistry } from "../plugins/registry.ts";
import { restartMonitorPlugin } from "../plugins/restart.ts";
import { runtimePlugin } from "../plugins/runtime.ts";
import {
  btrfsSnapshotterPlugin,
  nativeSnapshotterPlugin,
  overlaySnapshotterPlugin,
} from "../plugins/snapshots.ts";
import { transferPlugin } from "../plugins/transfer.ts";
import { runServicePlugin } from "./run_service.ts";

/** Every built-in plugin: core parts first, then the gRPC services over them. */
export function builtinRegistry(bus: EventBus): PluginRegistry {
  const registry = new PluginRegistry();
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
    .register(versionServicePlugin)
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
    .register(healthServicePlugin)
    .register(introspectionServicePlugin(registry));
  return registry;
}
