/**
 * The gRPC service plugins over the core stores whose code loads on first need: each plugin initialises
 * at start-up as before (`ctr plugins ls` lists it as it always did), but its handlers, and the protobuf
 * descriptors they bring, load when the first call to its service arrives, or when the daemon warms up
 * once it is serving (ApiServer.warm). Building those descriptors took ~10 ms of every start before the
 * first call could be served.
 */

import type { ContainerStore } from "../core/containers/mod.ts";
import type { ContentStore } from "../core/content/mod.ts";
import type { WalkingDiffer } from "../core/diff/mod.ts";
import type { ImageStore } from "../core/images/mod.ts";
import type { LeaseManager } from "../core/leases/mod.ts";
import type { TaskManager } from "../core/runtime/mod.ts";
import type { Snapshotter } from "../core/snapshots/mod.ts";
import {
  containerStorePluginId,
  containerStorePluginType,
  contentPluginType,
  differPluginType,
  gcPluginType,
  grpcPluginType,
  imageStorePluginId,
  imageStorePluginType,
  leasePluginType,
  runtimePluginId,
  runtimePluginType,
  snapshotterPluginType,
  transferPluginType,
} from "../plugins/ids.ts";
import type { GrpcService, InitContext, PluginDef } from "../plugins/registry.ts";
import type { TransferDeps } from "../plugins/transfer.ts";
import type { GcScheduler } from "./leases.ts";

/** A service whose routes register when `load` has run: on the first call under `/<typeName>/`, or at warm-up. */
function lazyService(typeName: string, load: () => Promise<GrpcService>): GrpcService {
  return { register() {}, deferred: { prefixes: [`/${typeName}/`], load, warm: true } };
}

/** The gc.v1 scheduler when one is loaded (it is optional: without it `sync` deletes do not wait). */
function optionalGc(ic: InitContext): GcScheduler | undefined {
  return ic.getOptional<GcScheduler>(gcPluginType, "scheduler");
}

export const contentServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: "content",
  requires: [contentPluginType, leasePluginType],
  init(ic) {
    const store = ic.get<ContentStore>(contentPluginType, "content");
    // Without leases (disabled in config) content is simply not leased.
    const leases = ic.getOptional<LeaseManager>(leasePluginType, "manager");
    return lazyService("containerd.services.content.v1.Content", async () => {
      const { createContentService } = await import("./content.ts");
      return createContentService(store, { events: ic.events, leases });
    });
  },
};

export const leasesServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: "leases",
  requires: [leasePluginType, gcPluginType],
  init(ic) {
    const leases = ic.get<LeaseManager>(leasePluginType, "manager");
    const gc = optionalGc(ic);
    return lazyService("containerd.services.leases.v1.Leases", async () => {
      const { createLeasesService } = await import("./leases.ts");
      return createLeasesService(leases, { gc });
    });
  },
};

export const imagesServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: "images",
  requires: [imageStorePluginType, gcPluginType, differPluginType],
  init(ic) {
    const store = ic.get<ImageStore>(imageStorePluginType, imageStorePluginId);
    const gc = optionalGc(ic);
    const differ = ic.getOptional<WalkingDiffer>(differPluginType, "walking");
    return lazyService("containerd.services.images.v1.Images", async () => {
      const { createImagesService } = await import("./images.ts");
      return createImagesService(store, {
        events: ic.events,
        gc,
        // A client-side pull (ctr) records the image once its blobs are written, then waits for its next
        // progress tick (100 ms) before it asks for the layers to be applied: time enough to load the
        // applier's modules, which a fresh daemon's first Diff/Apply would otherwise load (~25 ms), and
        // to run its code once on a small layer. (A daemon-side pull prepares only the modules: it is
        // busy downloading then.)
        onRecorded: differ && (() => setTimeout(() => void differ.prepare({ rehearse: true }), 0)),
      });
    });
  },
};

export const snapshotsServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: "snapshots",
  requires: [snapshotterPluginType, leasePluginType],
  init(ic) {
    const snapshotters = ic.getAll<Snapshotter>(snapshotterPluginType);
    const leases = ic.getAll<LeaseManager>(leasePluginType).get("manager");
    return lazyService("containerd.services.snapshots.v1.Snapshots", async () => {
      const { createSnapshotsService } = await import("./snapshots.ts");
      return createSnapshotsService(snapshotters, { events: ic.events, leases });
    });
  },
};

export const diffServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: "diff",
  requires: [differPluginType, contentPluginType, leasePluginType],
  init(ic) {
    const differ = ic.get<WalkingDiffer>(differPluginType, "walking");
    const deps = {
      content: ic.get<ContentStore>(contentPluginType, "content"),
      leases: ic.getOptional<LeaseManager>(leasePluginType, "manager"),
      tempDir: ic.state,
    };
    return lazyService("containerd.services.diff.v1.Diff", async () => {
      const { createDiffService } = await import("./diff.ts");
      return createDiffService(differ, deps);
    });
  },
};

export const containersServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: "containers",
  requires: [containerStorePluginType],
  init(ic) {
    const store = ic.get<ContainerStore>(containerStorePluginType, containerStorePluginId);
    return lazyService("containerd.services.containers.v1.Containers", async () => {
      const { createContainersService } = await import("./containers.ts");
      return createContainersService(store, { events: ic.events });
    });
  },
};

export const tasksServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: "tasks",
  requires: [
    containerStorePluginType,
    runtimePluginType,
    snapshotterPluginType,
    contentPluginType,
    leasePluginType,
  ],
  init(ic) {
    const deps = {
      containers: ic.get<ContainerStore>(containerStorePluginType, containerStorePluginId),
      runtime: ic.get<TaskManager>(runtimePluginType, runtimePluginId),
      snapshotters: ic.getAll<Snapshotter>(snapshotterPluginType),
      content: ic.get<ContentStore>(contentPluginType, "content"),
      // Without leases (disabled in config) checkpoints are simply not leased.
      leases: ic.getOptional<LeaseManager>(leasePluginType, "manager"),
      tempRoot: ic.root,
    };
    return lazyService("containerd.services.tasks.v1.Tasks", async () => {
      const { createTasksService } = await import("./tasks.ts");
      return createTasksService(deps);
    });
  },
};

export const transferServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: "transfer",
  requires: [transferPluginType],
  init(ic) {
    const deps = ic.get<TransferDeps>(transferPluginType, "local");
    return lazyService("berth.transfer.v1.Transfer", async () => {
      const { createTransferService } = await import("./transfer.ts");
      return createTransferService(deps, ic.events);
    });
  },
};
