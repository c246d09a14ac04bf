export {
  type Mount,
  mountAll,
  mountOne,
  type MountOptions,
  type ParsedOptions,
  parseMountOptions,
  readonlyMounts,
  removeStaleTempMounts,
  type TempMountOptions,
  unmountAll,
  withTempMount,
} from "./mount.ts";
export { lookupMount, type MountInfo, parseMountInfo, selfMountInfo } from "./mountinfo.ts";
export { rootfsUserDb } from "./user_db.ts";
