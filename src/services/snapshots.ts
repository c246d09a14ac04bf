import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { invalidArgument } from "../base/errors.ts";
import type { EventPublisher } from "../core/events/mod.ts";
import type { Mount } from "../core/mount/mod.ts";
import type { Info, Kind, Snapshotter } from "../core/snapshots/mod.ts";
import {
  SnapshotCommitSchema,
  SnapshotPrepareSchema,
  SnapshotRemoveSchema,
} from "../gen/events/snapshot_pb.ts";
import {
  type Info as InfoPb,
  InfoSchema,
  Kind as KindPb,
  Snapshots,
} from "../gen/services/snapshots/v1/snapshots_pb.ts";
import { type Mount as MountPb, MountSchema } from "../gen/types/mount_pb.ts";
import { type GrpcService } from "../plugins/registry.ts";
import { leaseOf, namespaceOf } from "./context.ts";
import { nanosFromTimestamp, timestampFromNanos } from "../base/timestamps.ts";
import type { LeaseManager } from "../core/leases/mod.ts";

/** containerd.services.snapshots.v1.Snapshots over the loaded snapshotters, by name. */
export interface SnapshotsServiceDeps {
  events: EventPublisher;
  /** When given, snapshots made under a `containerd-lease` header are added to that lease (GC keeps them). */
  leases?: LeaseManager;
}

export function createSnapshotsService(
  snapshotters: ReadonlyMap<string, Snapshotter>,
  deps: SnapshotsServiceDeps,
): GrpcService {
  return { register: (router) => router.service(Snapshots, snapshotsHandlers(snapshotters, deps)) };
}

const LIST_BATCH = 100;

function snapshotsHandlers(
  snapshotters: ReadonlyMap<string, Snapshotter>,
  deps: SnapshotsServiceDeps,
): ServiceImpl<typeof Snapshots> {
  const events = deps.events;
  // As containerd's metadata layer: a client's lease holds what it makes until it is done
  // (ctr's unpack commits layer after layer before the image's labels reference them).
  const lease = async (ctx: HandlerContext, ns: string, snapshotter: string, key: string) => {
    const id = leaseOf(ctx);
    if (id && deps.leases) {
      await deps.leases.addResource(ns, id, { type: `snapshots/${snapshotter}`, id: key });
    }
  };
  const get = (name: string): Snapshotter => {
    if (name === "") throw invalidArgument("Snapshotter argument missing");
    const s = snapshotters.get(name);
    if (!s) throw invalidArgument(`Snapshotter not loaded: ${name}`);
    return s;
  };
  return {
    async prepare(req, ctx) {
      const ns = namespaceOf(ctx);
      const sn = get(req.snapshotter);
      await lease(ctx, ns, req.snapshotter, req.key);
      const mounts = await sn.prepare(ns, req.key, {
        parent: req.parent,
        labels: req.labels,
      });
      events.publish(ns, "/snapshot/prepare", SnapshotPrepareSchema, {
        key: req.key,
        parent: req.parent,
        snapshotter: req.snapshotter,
      });
      return { mounts: mounts.map(mountToPb) };
    },
    async view(req, ctx) {
      const ns = namespaceOf(ctx);
      const sn = get(req.snapshotter);
      await lease(ctx, ns, req.snapshotter, req.key);
      const mounts = await sn.view(ns, req.key, { parent: req.parent, labels: req.labels });
      return { mounts: mounts.map(mountToPb) };
    },
    async mounts(req, ctx) {
      return { mounts: (await get(req.snapshotter).mounts(namespaceOf(ctx), req.key)).map(mountToPb) };
    },
    async commit(req, ctx) {
      const ns = namespaceOf(ctx);
      const sn = get(req.snapshotter);
      if (req.parent !== "" && (await sn.stat(ns, req.key)).parent !== req.parent) {
        throw invalidArgument(`Cannot change the parent of active snapshot "${req.key}" on commit`);
      }
      await lease(ctx, ns, req.snapshotter, req.name);
      await sn.commit(ns, req.name, { key: req.key, labels: req.labels });
      events.publish(ns, "/snapshot/commit", SnapshotCommitSchema, {
        key: req.key,
        name: req.name,
        snapshotter: req.snapshotter,
      });
      return {};
    },
    async remove(req, ctx) {
      const ns = namespaceOf(ctx);
      await get(req.snapshotter).remove(ns, req.key);
      events.publish(ns, "/snapshot/remove", SnapshotRemoveSchema, {
        key: req.key,
        snapshotter: req.snapshotter,
      });
      return {};
    },
    async stat(req, ctx) {
      return { info: infoToPb(await get(req.snapshotter).stat(namespaceOf(ctx), req.key)) };
    },
    async update(req, ctx) {
      if (!req.info) throw invalidArgument("Cannot update a snapshot: the request has no info");
      const info = await get(req.snapshotter).update(namespaceOf(ctx), infoFromPb(req.info), {
        fieldpaths: req.updateMask?.paths ?? [],
      });
      return { info: infoToPb(info) };
    },
    async *list(req, ctx) {
      const sn = get(req.snapshotter);
      let batch: InfoPb[] = [];
      const all: InfoPb[][] = [];
      await sn.walk(namespaceOf(ctx), (info) => {
        batch.push(infoToPb(info));
        if (batch.length >= LIST_BATCH) {
          all.push(batch);
          batch = [];
        }
      }, { filters: req.filters, signal: ctx.signal });
      if (batch.length > 0) all.push(batch);
      for (const info of all) yield { info };
    },
    async usage(req, ctx) {
      const u = await get(req.snapshotter).usage(namespaceOf(ctx), req.key);
      return { size: BigInt(u.size), inodes: BigInt(u.inodes) };
    },
    async cleanup(req) {
      await get(req.snapshotter).cleanup();
      return {};
    },
  };
}

export function mountToPb(m: Mount): MountPb {
  return create(MountSchema, {
    type: m.type,
    source: m.source,
    target: m.target ?? "",
    options: [...m.options],
  });
}

export function mountFromPb(m: MountPb): Mount {
  return { type: m.type, source: m.source, target: m.target, options: m.options };
}

const KIND_TO_PB: Record<Kind, KindPb> = {
  view: KindPb.VIEW,
  active: KindPb.ACTIVE,
  committed: KindPb.COMMITTED,
};

function infoToPb(i: Info): InfoPb {
  return create(InfoSchema, {
    name: i.name,
    parent: i.parent,
    kind: KIND_TO_PB[i.kind],
    createdAt: timestampFromNanos(i.created),
    updatedAt: timestampFromNanos(i.updated),
    labels: { ...i.labels },
  });
}

function infoFromPb(i: InfoPb): Info {
  const kind = (Object.keys(KIND_TO_PB) as Kind[]).find((k) => KIND_TO_PB[k] === i.kind) ?? "active";
  return {
    name: i.name,
    parent: i.parent,
    kind,
    labels: i.labels,
    created: nanosFromTimestamp(i.createdAt),
    updated: nanosFromTimestamp(i.updatedAt),
  };
}
