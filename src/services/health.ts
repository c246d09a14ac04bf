import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.ts";
import type { GrpcService, PluginDef } from "../plugins/registry.ts";
import { grpcPluginType } from "../plugins/ids.ts";

export const healthServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: "healthcheck",
  early: true,
  init: () => ({
    register: (router) =>
      router.service(Health, {
        check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }),
        async *watch(_req, ctx) {
          yield { status: HealthCheckResponse_ServingStatus.SERVING };
          await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
        },
      }),
  }),
};
