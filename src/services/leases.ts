import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument } from "../base/errors.ts";
import type { Lease, LeaseManager } from "../core/leases/mod.ts";
import { type Lease as LeasePb, Leases, LeaseSchema } from "../gen/services/leases/v1/leases_pb.ts";
import type { GrpcService } from "../plugins/registry.ts";
import { namespaceOf } from "./context.ts";
import { timestampFromNanos } from "../base/timestamps.ts";

/** The garbage collector, as far as a synchronous delete needs it. */
export interface GcScheduler {
  scheduleAndWait(signal?: AbortSignal): Promise<unknown>;
}

/** containerd.services.leases.v1.Leases over a LeaseManager. */
export function createLeasesService(leases: LeaseManager, deps: { gc?: GcScheduler } = {}): GrpcService {
  return { register: (router) => router.service(Leases, leasesHandlers(leases, deps)) };
}

function leasesHandlers(leases: LeaseManager, deps: { gc?: GcScheduler }): ServiceImpl<typeof Leases> {
  return {
    async create(req, ctx) {
      const lease = await leases.create(namespaceOf(ctx), { id: req.id, labels: req.labels });
      return { lease: leaseToPb(lease) };
    },
    async delete(req, ctx) {
      await leases.delete(namespaceOf(ctx), req.id);
      if (req.sync) await deps.gc?.scheduleAndWait(ctx.signal);
      return {};
    },
    async list(req, ctx) {
      return { leases: (await leases.list(namespaceOf(ctx), { filters: req.filters })).map(leaseToPb) };
    },
    async addResource(req, ctx) {
      if (!req.resource) throw invalidArgument(`Cannot add a resource to lease ${req.id}: none given`);
      await leases.addResource(namespaceOf(ctx), req.id, { id: req.resource.id, type: req.resource.type });
      return {};
    },
    async deleteResource(req, ctx) {
      if (!req.resource) throw invalidArgument(`Cannot delete a resource from lease ${req.id}: none given`);
      await leases.deleteResource(namespaceOf(ctx), req.id, { id: req.resource.id, type: req.resource.type });
      return {};
    },
    async listResources(req, ctx) {
      return { resources: await leases.listResources(namespaceOf(ctx), req.id) };
    },
  };
}

function leaseToPb(l: Lease): LeasePb {
  return create(LeaseSchema, {
    id: l.id,
    createdAt: timestampFromNanos(l.createdAt),
    labels: { ...l.labels },
  });
}
