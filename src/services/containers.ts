import { create } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Container, ContainerInit, ContainerStore } from "../core/containers/mod.ts";
import { invalidArgument } from "../base/errors.ts";
import type { EventPublisher } from "../core/events/mod.ts";
import {
  ContainerCreateSchema,
  ContainerDeleteSchema,
  ContainerUpdateSchema,
} from "../gen/events/container_pb.ts";
import {
  type Container as ContainerPb,
  Containers,
  ContainerSchema,
} from "../gen/services/containers/v1/containers_pb.ts";
import { type GrpcService } from "../plugins/registry.ts";
import { namespaceOf } from "./context.ts";
import { timestampFromNanos } from "../base/timestamps.ts";

/** containerd.services.containers.v1.Containers over a ContainerStore, publishing `/containers/*`. */
export function createContainersService(
  store: ContainerStore,
  deps: { events: EventPublisher },
): GrpcService {
  return { register: (router) => router.service(Containers, containersHandlers(store, deps.events)) };
}

function containersHandlers(store: ContainerStore, events: EventPublisher): ServiceImpl<typeof Containers> {
  return {
    get(req, ctx) {
      return { container: containerToPb(store.get(namespaceOf(ctx), req.id)) };
    },
    list(req, ctx) {
      return { containers: store.list(namespaceOf(ctx), { filters: req.filters }).map(containerToPb) };
    },
    async *listStream(req, ctx) {
      for (const c of store.list(namespaceOf(ctx), { filters: req.filters })) {
        yield { container: containerToPb(c) };
      }
    },
    create(req, ctx) {
      const ns = namespaceOf(ctx);
      const c = store.create(ns, containerFromPb(req.container, "create"));
      events.publish(ns, "/containers/create", ContainerCreateSchema, {
        id: c.id,
        image: c.image,
        runtime: { name: c.runtime.name, options: c.runtime.options && create(AnySchema, c.runtime.options) },
      });
      return { container: containerToPb(c) };
    },
    update(req, ctx) {
      const ns = namespaceOf(ctx);
      const c = store.update(ns, containerFromPb(req.container, "update"), {
        fieldpaths: req.updateMask?.paths ?? [],
      });
      events.publish(ns, "/containers/update", ContainerUpdateSchema, {
        id: c.id,
        image: c.image,
        labels: { ...c.labels },
        snapshotKey: c.snapshotKey,
      });
      return { container: containerToPb(c) };
    },
    delete(req, ctx) {
      const ns = namespaceOf(ctx);
      store.delete(ns, req.id);
      events.publish(ns, "/containers/delete", ContainerDeleteSchema, { id: req.id });
      return {};
    },
  };
}

function containerFromPb(c: ContainerPb | undefined, verb: string): ContainerInit {
  if (c === undefined) throw invalidArgument(`Cannot ${verb} a container: the request has none`);
  return {
    id: c.id,
    labels: { ...c.labels },
    image: c.image,
    runtime: {
      name: c.runtime?.name ?? "",
      ...(c.runtime?.options
        ? { options: { typeUrl: c.runtime.options.typeUrl, value: c.runtime.options.value } }
        : {}),
    },
    ...(c.spec ? { spec: { typeUrl: c.spec.typeUrl, value: c.spec.value } } : {}),
    snapshotter: c.snapshotter,
    snapshotKey: c.snapshotKey,
    extensions: Object.fromEntries(
      Object.entries(c.extensions).map(([k, v]) => [k, { typeUrl: v.typeUrl, value: v.value }]),
    ),
    sandbox: c.sandbox,
  };
}

export function containerToPb(c: Container): ContainerPb {
  return create(ContainerSchema, {
    id: c.id,
    labels: { ...c.labels },
    image: c.image,
    runtime: { name: c.runtime.name, options: c.runtime.options && create(AnySchema, c.runtime.options) },
    spec: c.spec && create(AnySchema, c.spec),
    snapshotter: c.snapshotter,
    snapshotKey: c.snapshotKey,
    createdAt: timestampFromNanos(c.createdAt),
    updatedAt: timestampFromNanos(c.updatedAt),
    extensions: Object.fromEntries(Object.entries(c.extensions).map(([k, v]) => [k, create(AnySchema, v)])),
    sandbox: c.sandbox,
  });
}
