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
export { ProxySnapshotter, type ProxySnapshotterOptions } from "./proxy.ts";
