/**
 * Moving images in and out of the daemon: pull and push against registries, and unpacking what is
 * stored. (Import and export of tarballs run client-side, as ctr's: src/client/archive.)
 */
export {
  DEFAULT_MAX_CONCURRENT_DOWNLOADS,
  pull,
  type PullDeps,
  type PullOptions,
  type PullResult,
} from "./pull.ts";
export { PULL_SECONDS_BUCKETS, type PullRecord, PullStats } from "./pull_stats.ts";
export { push, type PushDeps, type PushOptions } from "./push.ts";
export type { ImageRecorded, ImageUnpacker, ProgressFn, TransferEvent, TransferStatus } from "./types.ts";
export { localBlobStore, localImageRecords } from "./blobs.ts";
export { unpackStoredImage } from "./unpack_image.ts";
export { DAEMON_LEASE_LABEL, dropDaemonLeases, type Hold, withLease } from "./lease.ts";
export { decryptionKeys, decryptionKeysPaths, type StreamProcessor } from "./decryption_keys.ts";
