import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument, notImplemented } from "../core/errdefs/mod.ts";
import type { WalkingDiffer } from "../core/diff/mod.ts";
import { Diff } from "../gen/services/diff/v1/diff_pb.ts";
import { differPluginType } from "../plugins/diff.ts";
import { grpcPluginType, type GrpcService, type PluginDef } from "../plugins/registry.ts";
import { namespaceOf } from "./context.ts";
import { mountFromPb } from "./snapshots.ts";

/** containerd.services.diff.v1.Diff: Apply through the walking differ; Diff is not implemented yet. */
export function createDiffService(differ: WalkingDiffer): GrpcService {
  return { register: (router) => router.service(Diff, diffHandlers(differ)) };
}

export const diffServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: "diff",
  requires: [differPluginType],
  init(ic) {
    return createDiffService(ic.get<WalkingDiffer>(differPluginType, "walking"));
  },
};

function diffHandlers(differ: WalkingDiffer): ServiceImpl<typeof Diff> {
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
    diff() {
      throw notImplemented("Diff.Diff is not implemented yet: Berth can apply layers but not create them");
    },
  };
}
