import type { ContentStore } from "../core/content/mod.ts";
import type { EventBus } from "../core/events/mod.ts";
import { GarbageCollector } from "../core/gc/mod.ts";
import type { ImageStore } from "../core/images/mod.ts";
import type { LeaseManager } from "../core/leases/mod.ts";
import type { NamespaceStore } from "../core/namespaces/mod.ts";
import type { Snapshotter } from "../core/snapshots/mod.ts";
import { contentPluginType } from "./content.ts";
import { eventsPluginType } from "./events.ts";
import { imageStorePluginId, imageStorePluginType } from "./images.ts";
import { leasePluginType } from "./leases.ts";
import type { PluginDef } from "./registry.ts";
import { snapshotterPluginType } from "./snapshots.ts";

/** Topics that change what is reachable; deletions are counted apart, as containerd does. */
const mutating = /^\/(images|content|leases|snapshot|containers|namespaces)\//;
const deleting = /\/(delete|remove)$/;

/**
 * The collector as containerd's `io.containerd.gc.v1.scheduler`, with its thresholds: a collection
 * runs `startup_delay_ms` after start (negative: never), after `mutation_threshold` changes (default 100), after
 * `deletion_threshold` deletions (default 0: off) and on demand for `sync` deletes.
 */
export const gcSchedulerPlugin: PluginDef<GarbageCollector> = {
  type: "io.containerd.gc.v1",
  id: "scheduler",
  requires: [
    contentPluginType,
    imageStorePluginType,
    leasePluginType,
    snapshotterPluginType,
    "io.containerd.metadata.v1",
    eventsPluginType,
  ],
  configKeys: ["startup_delay_ms", "mutation_threshold", "deletion_threshold"],
  init(ic) {
    const namespaces = ic.get<NamespaceStore>("io.containerd.metadata.v1", "namespaces");
    const gc = new GarbageCollector({
      content: ic.get<ContentStore>(contentPluginType),
      images: ic.get<ImageStore>(imageStorePluginType, imageStorePluginId),
      leases: ic.get<LeaseManager>(leasePluginType),
      snapshotters: ic.getAll<Snapshotter>(snapshotterPluginType),
      namespaces: () => namespaces.list().map((n) => n.name),
      log: ic.log,
    });
    const mutationThreshold = Number(ic.config.mutation_threshold ?? 100);
    const deletionThreshold = Number(ic.config.deletion_threshold ?? 0);
    const run = () => {
      mutations = 0;
      deletions = 0;
      gc.scheduleAndWait().catch((err) => ic.log.warn("garbage collection failed", { error: err.message }));
    };
    let mutations = 0;
    let deletions = 0;
    const startupDelay = Number(ic.config.startup_delay_ms ?? 100);
    const startup = startupDelay >= 0 ? setTimeout(run, startupDelay) : undefined;
    const bus = ic.get<EventBus>(eventsPluginType);
    const abort = new AbortController();
    (async () => {
      for await (const env of bus.subscribe({ signal: abort.signal })) {
        if (!mutating.test(env.topic)) continue;
        mutations++;
        if (deleting.test(env.topic)) deletions++;
        if (
          (mutationThreshold > 0 && mutations >= mutationThreshold) ||
          (deletionThreshold > 0 && deletions >= deletionThreshold)
        ) run();
      }
    })();
    stops.set(gc, () => {
      abort.abort();
      clearTimeout(startup);
    });
    return gc;
  },
  close(gc) {
    stops.get(gc)?.();
  },
};

const stops = new WeakMap<GarbageCollector, () => void>();
