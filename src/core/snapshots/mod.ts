export type {
  CollectableSnapshotter,
  CommitOptions,
  Info,
  Kind,
  PrepareOptions,
  Snapshotter,
  Usage,
  WalkOptions,
} from "./snapshotter.ts";
export { isCollectable } from "./snapshotter.ts";
export { NativeSnapshotter } from "./native.ts";
export { btrfsMountOf, type BtrfsOptions, BtrfsSnapshotter, removeSubvolumes } from "./btrfs.ts";
export { type OverlayOptions, OverlaySnapshotter, overlaySupported } from "./overlay.ts";
// The proxy's module (and the Snapshots API descriptors it brings) loads only when a proxy is configured.
export type { ProxySnapshotter, ProxySnapshotterOptions } from "./proxy.ts";
