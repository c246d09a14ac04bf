export { berthShimCommand, parseBootstrap, shimCommand, type ShimEnv } from "./binary.ts";
export { Bundle, type ShimRecord } from "./bundle.ts";
export {
  type CreateTaskOptions,
  type TaskExitInfo,
  TaskManager,
  type TaskManagerOptions,
} from "./manager.ts";
export {
  type CallOptions,
  type ExecOptions,
  type ProcessExit,
  type ProcessState,
  type ShimCreateRequest,
  ShimTask,
} from "./task.ts";
export {
  type CheckpointDescriptor,
  checkpointImagePath,
  checkpointTask,
  type CheckpointTaskOptions,
  checkRestoreSource,
  MEDIA_TYPE_CHECKPOINT,
  MEDIA_TYPE_CHECKPOINT_CONFIG,
  releaseRestoreImage,
  restoreDir,
  restoreImagePath,
  unpackCheckpoint,
  writeCheckpointBlob,
} from "./checkpoint.ts";
export { type NamedRuntime, resolveRuntime } from "./named.ts";
