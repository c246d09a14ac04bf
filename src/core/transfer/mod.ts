/**
 * Moving images in and out: pull and push against registries (in the daemon), import and export of
 * OCI layout and `docker save` tarballs, and the platform matching and labels they share with containerd.
 */
export {
  DEFAULT_MAX_CONCURRENT_DOWNLOADS,
  pull,
  type PullDeps,
  type PullOptions,
  type PullResult,
} from "./pull.ts";
export { push, type PushDeps, type PushOptions } from "./push.ts";
export {
  childGcLabels,
  childrenOf,
  distributionSourceLabel,
  isConfigType,
  isIndexType,
  isLayerType,
  isManifestType,
  type Parsed,
  parseManifest,
  refKey,
} from "../../oci/manifest.ts";
export {
  allPlatforms,
  formatPlatform,
  hostPlatform,
  normalize as normalizePlatform,
  parsePlatform,
  type PlatformMatcher,
  platformMatcher,
  type PlatformSpec,
} from "../../oci/platforms.ts";
export type { ImageRecorded, ImageUnpacker, ProgressFn, TransferEvent, TransferStatus } from "./types.ts";
export { localBlobStore, localImageRecords } from "./blobs.ts";
export {
  ANNOTATION_IMAGE_NAME,
  ANNOTATION_REF_NAME,
  importArchive,
  type ImportOptions,
  type ImportResult,
  ociReferenceName,
} from "./import.ts";
export { exportArchive, type ExportOptions } from "./export.ts";
export { checkImage, type ImageCheck } from "./check.ts";
export { unpackStoredImage } from "./unpack_image.ts";
