export { applyLayer, type ApplyOptions, type ApplyResult, removeStaleRehearsals } from "./apply.ts";
export { type Compression, layerCompression } from "./media_types.ts";
export { cleanEntryPath, resolveInRoot } from "./root_path.ts";
export {
  type BlobReader,
  type DifferApplyOptions,
  type LayerApplier,
  uncompressedLayerType,
  WalkingDiffer,
} from "./walking.ts";
export { diffMounts, type DiffMountsOptions, LABEL_UNCOMPRESSED } from "./diff_mounts.ts";
export { writeDiff, type WriteDiffOptions } from "./compare.ts";
