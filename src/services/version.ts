import { Version } from "../gen/services/version/v1/version_pb.ts";
import type { GrpcService, PluginDef } from "../plugins/registry.ts";
import { grpcPluginType } from "../plugins/ids.ts";
import { revision, version } from "../version.ts";

export const versionServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: "version",
  early: true,
  init: () => ({
    register: (router) => router.service(Version, { version: () => ({ version, revision }) }),
  }),
};
