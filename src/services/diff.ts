import type { ServiceImpl } from "@connectrpc/connect";
import type { ContentStore } from "../core/content/mod.ts";
import { invalidArgument, notImplemented } from "../base/errors.ts";
import { diffMounts, type WalkingDiffer } from "../core/diff/mod.ts";
import type { LeaseManager } from "../core/leases/mod.ts";
import { Diff } from "../gen/services/diff/v1/diff_pb.ts";
import { type GrpcService } from "../plugins/registry.ts";
import { leaseOf, namespaceOf } from "./context.ts";
import { mountFromPb } from "./snapshots.ts";

export interface DiffServiceDeps {
  /** Where Diff writes the layers it creates; without it Diff is unimplemented. */
  readonly content?: ContentStore;
  /** Holds a new layer for the request's lease (`containerd-lease`), as containerd's metadata store does. */
  readonly leases?: LeaseManager;
  /** Parent folder for temporary mount points. */
  readonly tempDir?: string;
}

/** containerd.services.diff.v1.Diff: Apply through the walking differ, Diff by walking two mounts. */
export function createDiffService(differ: WalkingDiffer, deps: DiffServiceDeps = {}): GrpcService {
  return { register: (router) => router.service(Diff, diffHandlers(differ, deps)) };
}

function diffHandlers(differ: WalkingDiffer, deps: DiffServiceDeps): ServiceImpl<typeof Diff> {
  return {
    async apply(req, ctx) {
      const ns = namespaceOf(ctx);
      const d = req.diff;
      if (!d || d.digest === "") throw invalidArgument("Cannot apply a diff: the request has no descriptor");
      const applied = await differ.apply(
        ns,
        { mediaType: d.mediaType, digest: d.digest, size: Number(d.size) },
        req.mounts.map(mountFromPb),
        { signal: ctx.signal, payloads: req.payloads },
      );
      return {
        applied: { mediaType: applied.mediaType, digest: applied.digest, size: BigInt(applied.size) },
      };
    },
    async diff(req, ctx) {
      if (!deps.content) {
        throw notImplemented("Diff.Diff is not available: the diff service has no content store");
      }
      const ns = namespaceOf(ctx);
      const lease = leaseOf(ctx);
      const d = await diffMounts(req.left.map(mountFromPb), req.right.map(mountFromPb), {
        namespace: ns,
        // Held before it is committed, so no collection finds the new layer unreferenced.
        beforeCommit: lease === undefined || !deps.leases
          ? undefined
          : (digest) => deps.leases!.addResource(ns, lease, { id: digest, type: "content" }),
        content: deps.content,
        mediaType: req.mediaType,
        ref: req.ref,
        labels: req.labels,
        signal: ctx.signal,
        tempDir: deps.tempDir,
      });
      return { diff: { mediaType: d.mediaType, digest: d.digest, size: BigInt(d.size) } };
    },
  };
}
