export {
  type Mount,
  mountAll,
  mountOne,
  type MountOptions,
  type ParsedOptions,
  parseMountOptions,
  type TempMountOptions,
  unmountAll,
  withTempMount,
} from "./mount.ts";
