/**
 * runtime.v1.RuntimeService and runtime.v1.ImageService (Kubernetes' CRI) on the daemon's socket, as
 * containerd's io.containerd.grpc.v1.cri serves them: handlers translate messages and call the core's
 * CriService (src/core/cri). Requests carry no containerd namespace: everything is in `k8s.io`.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { notImplemented } from "../base/errors.ts";
import { ImageCreateSchema, ImageDeleteSchema, ImageUpdateSchema } from "../gen/events/image_pb.ts";
import {
  CRI_CONFIG_KEYS,
  CRI_NAMESPACE,
  type CriImage,
  CriService,
  parseCriConfig,
  unimplementedSettings,
} from "../core/cri/mod.ts";
import type { TransferDeps } from "../plugins/transfer.ts";
import { type Image, ImageSchema, ImageService, RuntimeService } from "../gen/k8s/cri/runtime/v1/api_pb.ts";
import { criPluginId, grpcPluginType, snapshotterPluginType, transferPluginType } from "../plugins/ids.ts";
import type { GrpcService, PluginDef } from "../plugins/registry.ts";
import { version } from "../version.ts";

export function createCriServices(cri: CriService): GrpcService {
  return {
    register(router) {
      router.service(ImageService, imageHandlers(cri));
      router.service(RuntimeService, runtimeHandlers(cri));
    },
  };
}

/**
 * `io.containerd.grpc.v1.cri`, configured by `[plugins."io.containerd.grpc.v1.cri"]` with containerd's
 * keys (src/core/cri/config.ts). It needs the transfer plugin (pulls and unpacks) and the snapshotters.
 */
export const criServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: criPluginId,
  requires: [transferPluginType, snapshotterPluginType],
  configKeys: CRI_CONFIG_KEYS,
  init(ic) {
    const config = parseCriConfig(ic.config);
    for (const key of unimplementedSettings(ic.config)) {
      ic.log.warn("CRI setting is not implemented by Berth and is ignored", { key });
    }
    const transfer = ic.get<TransferDeps>(transferPluginType, "local");
    const cri = new CriService(config, {
      ...transfer,
      snapshotterRoot: (name) => `${ic.daemonRoot}/${snapshotterPluginType}.${name}`,
      networkNotReady: () => cniConfigMissing(config.cni.confDir),
      onImageChange: (kind, img) => {
        if (kind === "delete") {
          ic.events.publish(CRI_NAMESPACE, "/images/delete", ImageDeleteSchema, { name: img.name });
        } else if (kind === "create") {
          ic.events.publish(CRI_NAMESPACE, "/images/create", ImageCreateSchema, img);
        } else ic.events.publish(CRI_NAMESPACE, "/images/update", ImageUpdateSchema, img);
      },
      log: ic.log,
    });
    return createCriServices(cri);
  },
};

/**
 * Until the CNI runner loads the networks: whether conf_dir holds a network config at all, in the
 * words containerd uses when it does not.
 */
async function cniConfigMissing(confDir: string): Promise<string | undefined> {
  try {
    for await (const e of Deno.readDir(confDir)) {
      if (/\.(conflist|conf|json)$/.test(e.name)) return undefined;
    }
  } catch { /* no folder */ }
  return "cni plugin not initialized";
}

function toImagePb(i: CriImage): Image {
  return create(ImageSchema, {
    id: i.id,
    repoTags: i.repoTags,
    repoDigests: i.repoDigests,
    size: BigInt(i.size),
    uid: i.uid !== undefined ? { value: i.uid } : undefined,
    username: i.username,
  });
}

function imageHandlers(cri: CriService): Partial<ServiceImpl<typeof ImageService>> {
  return {
    async listImages() {
      return { images: (await cri.images.list()).map(toImagePb) };
    },
    async imageStatus(req) {
      const image = await cri.imageStatus(req.image?.image ?? "");
      if (!image) return {};
      const info: Record<string, string> = req.verbose
        ? { info: JSON.stringify({ chainID: image.chainId, imageSpec: image.config }) }
        : {};
      return { image: toImagePb(image), info };
    },
    async pullImage(req, ctx) {
      const auth = req.auth;
      const imageRef = await cri.pullImage(req.image?.image ?? "", {
        auth: auth && {
          username: auth.username,
          password: auth.password,
          auth: auth.auth,
          serverAddress: auth.serverAddress,
          identityToken: auth.identityToken,
          registryToken: auth.registryToken,
        },
        signal: ctx.signal,
      });
      return { imageRef };
    },
    async removeImage(req) {
      await cri.removeImage(req.image?.image ?? "");
      return {};
    },
    async imageFsInfo() {
      const u = await cri.imageFsInfo();
      return {
        imageFilesystems: [{
          timestamp: u.timestamp,
          fsId: { mountpoint: u.mountpoint },
          usedBytes: { value: u.usedBytes },
          inodesUsed: { value: u.inodesUsed },
        }],
      };
    },
  };
}

function runtimeHandlers(cri: CriService): Partial<ServiceImpl<typeof RuntimeService>> {
  return {
    version() {
      return { version: "0.1.0", runtimeName: "berth", runtimeVersion: version, runtimeApiVersion: "v1" };
    },
    async status(req) {
      const s = await cri.status();
      return {
        status: {
          conditions: s.conditions.map((c) => ({
            type: c.type,
            status: c.status,
            reason: c.reason,
            message: c.message,
          })),
        },
        info: (req.verbose ? { config: JSON.stringify(cri.config) } : {}) as Record<string, string>,
      };
    },
    updateRuntimeConfig(req) {
      cri.updateRuntimeConfig(req.runtimeConfig?.networkConfig?.podCidr ?? "");
      return {};
    },
    listMetricDescriptors() {
      throw notImplemented("ListMetricDescriptors is not implemented, as in containerd 1.6");
    },
    listPodSandboxMetrics() {
      throw notImplemented("ListPodSandboxMetrics is not implemented, as in containerd 1.6");
    },
  };
}
