import {
  containerStorePluginId,
  containerStorePluginType,
  contentPluginType,
  gcPluginType,
  imageStorePluginId,
  imageStorePluginType,
  leasePluginType,
  metadataNamespacesPluginId,
  metadataPluginType,
  snapshotterPluginType,
} from "./ids.ts";
import type { ContainerStore } from "../core/containers/mod.ts";
import type { ContentStore } from "../core/content/mod.ts";
import {
  formatGoDuration,
  GarbageCollector,
  gcConfigKeys,
  GcScheduler,
  parseGcConfig,
} from "../core/gc/mod.ts";
import type { ImageStore } from "../core/images/mod.ts";
import type { LeaseManager } from "../core/leases/mod.ts";
import type { NamespaceStore } from "../core/namespaces/mod.ts";
import { type CollectableSnapshotter, isCollectable, type Snapshotter } from "../core/snapshots/mod.ts";
import { dropDaemonLeases } from "../core/transfer/mod.ts";
import type { PluginDef } from "./registry.ts";

/**
 * containerd's `io.containerd.gc.v1.scheduler`: collects after deletions and mutations of the metadata
 * database, on containerd 1.6's schedule and with its config keys (`pause_threshold`,
 * `deletion_threshold`, `mutation_threshold`, `schedule_delay`, `startup_delay`). Its instance serves
 * `ScheduleAndWait` for `sync` deletes.
 */
export const gcSchedulerPlugin: PluginDef<GcScheduler> = {
  type: gcPluginType,
  id: "scheduler",
  requires: [
    contentPluginType,
    imageStorePluginType,
    leasePluginType,
    snapshotterPluginType,
    metadataPluginType,
  ],
  configKeys: gcConfigKeys,
  init(ic) {
    const config = parseGcConfig(ic.config);
    const namespaces = ic.get<NamespaceStore>(metadataPluginType, metadataNamespacesPluginId);
    const snapshotters = new Map<string, CollectableSnapshotter>();
    // Proxy plugins keep their own records: collected through their API.
    const remoteSnapshotters = new Map<string, Snapshotter>();
    for (const [name, sn] of ic.getAll<Snapshotter>(snapshotterPluginType)) {
      if (isCollectable(sn)) snapshotters.set(name, sn);
      else remoteSnapshotters.set(name, sn);
    }
    const collector = new GarbageCollector({
      db: ic.db,
      content: ic.get<ContentStore>(contentPluginType, "content"),
      images: ic.get<ImageStore>(imageStorePluginType, imageStorePluginId),
      leases: ic.get<LeaseManager>(leasePluginType),
      containers: ic.getAll<ContainerStore>(containerStorePluginType).get(containerStorePluginId),
      snapshotters,
      remoteSnapshotters,
      namespaces: () => namespaces.list().map((n) => n.name),
      log: ic.log,
    });
    const scheduler = new GcScheduler(collector, { config, mutations: ic.db, log: ic.log });
    // As containerd's plugin exports them (`ctr plugins ls -d`).
    ic.exports["PauseThreshold"] = String(config.pauseThreshold);
    ic.exports["DeletionThreshold"] = String(config.deletionThreshold);
    ic.exports["MutationThreshold"] = String(config.mutationThreshold);
    ic.exports["ScheduleDelay"] = formatGoDuration(config.scheduleDelayMs);
    ic.onServing(() => scheduler.start());
    // Pulls and unpacks the previous run was doing died with it: their leases go (a deletion, which the
    // scheduler finds once it starts, and so collects what they held, e.g. an unpack's extract snapshot).
    const leases = ic.get<LeaseManager>(leasePluginType);
    const dropped = dropDaemonLeases(leases);
    if (dropped > 0) ic.log.info("dropped the leases of the previous run's transfers", { leases: dropped });
    return scheduler;
  },
  close: (scheduler) => scheduler.stop(),
};
