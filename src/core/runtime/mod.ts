export { berthShimCommand, parseBootstrap, shimCommand, type ShimEnv } from "./binary.ts";
export { Bundle, type ShimRecord } from "./bundle.ts";
export {
  type CreateTaskOptions,
  ShimTask,
  type TaskClient,
  type TaskExitInfo,
  TaskManager,
  type TaskManagerOptions,
} from "./manager.ts";
