/**
 * Kubernetes' Container Runtime Interface over Berth's core, as containerd 1.6's CRI plugin
 * (`io.containerd.grpc.v1.cri`): everything lives in the `k8s.io` namespace, so `ctr -n k8s.io` sees
 * the same images, containers and tasks. The gRPC edge is src/services/cri.ts.
 */
export {
  CRI_CONFIG_KEYS,
  type CriConfig,
  type CriRuntime,
  parseCriConfig,
  unimplementedSettings,
} from "./config.ts";
export { type CriImage, CriImages, IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE, type ImageChanged } from "./images.ts";
export {
  type AuthConfig,
  CRI_NAMESPACE,
  CriService,
  type CriServiceDeps,
  type ImageFsUsage,
  type RuntimeCondition,
} from "./service.ts";
