import {
  contentPluginType,
  differPluginType,
  imageStorePluginId,
  imageStorePluginType,
  leasePluginType,
  snapshotterPluginType,
  transferPluginType,
} from "./ids.ts";
import type { ContentStore } from "../core/content/mod.ts";
import { invalidArgument } from "../base/errors.ts";
import type { ImageStore } from "../core/images/mod.ts";
import type { LeaseManager } from "../core/leases/mod.ts";
import type { Snapshotter } from "../core/snapshots/mod.ts";
import { Unpacker } from "../core/unpack/mod.ts";
import type { LayerApplier } from "../core/diff/mod.ts";
import {
  decryptionKeysPaths,
  DEFAULT_MAX_CONCURRENT_DOWNLOADS,
  type ImageUnpacker,
  PullStats,
} from "../core/transfer/mod.ts";
import type { PluginDef } from "./registry.ts";

/** What the Transfer service works with: the stores, the snapshotters, and the pull settings. */
export interface TransferDeps {
  readonly content: ContentStore;
  readonly images: ImageStore;
  readonly snapshotters: Map<string, Snapshotter>;
  readonly unpacker?: ImageUnpacker;
  readonly leases?: LeaseManager;
  readonly maxConcurrentDownloads: number;
  readonly maxConcurrentUploads: number;
  /** containerd's registry `config_path` (hosts.toml folders), used when a request names none. */
  readonly configPath?: string;
  readonly defaultSnapshotter: string;
  /** Key folders for encrypted layers, from `[stream_processors]` (ctd-decoder's --decryption-keys-path). */
  readonly decryptionKeysPaths: readonly string[];
  /** Every pull of the daemon, by the Transfer service and by CRI alike (the daemon's metrics). */
  readonly pullStats: PullStats;
}

/**
 * `io.containerd.transfer.v1.local` (containerd 2's name for in-daemon transfer). Config:
 * `max_concurrent_downloads` (default 3), `max_concurrent_uploaded_layers` (default 3), `config_path`,
 * `snapshotter` (default overlayfs, else native). Encrypted layers are decrypted with the keys under the
 * folders the daemon's `[stream_processors]` give ctd-decoder (`--decryption-keys-path`).
 */
export const transferPlugin: PluginDef<TransferDeps> = {
  type: transferPluginType,
  id: "local",
  requires: [
    contentPluginType,
    imageStorePluginType,
    snapshotterPluginType,
    differPluginType,
    leasePluginType,
  ],
  configKeys: ["max_concurrent_downloads", "max_concurrent_uploaded_layers", "config_path", "snapshotter"],
  init(ic) {
    const snapshotters = ic.getAll<Snapshotter>(snapshotterPluginType);
    const count = (key: string, fallback: number) => {
      const v = ic.config[key] ?? fallback;
      if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
        throw invalidArgument(`Invalid transfer ${key} ${JSON.stringify(v)}: use a positive integer`);
      }
      return v;
    };
    const configPath = ic.config["config_path"];
    if (configPath !== undefined && typeof configPath !== "string") {
      throw invalidArgument(`Invalid transfer config_path ${JSON.stringify(configPath)}: use a folder path`);
    }
    const snapshotter = ic.config["snapshotter"] ?? (snapshotters.has("overlayfs") ? "overlayfs" : "native");
    if (typeof snapshotter !== "string") {
      throw invalidArgument(
        `Invalid transfer snapshotter ${JSON.stringify(snapshotter)}: use a snapshotter id`,
      );
    }
    const content = ic.get<ContentStore>(contentPluginType, "content");
    return {
      content,
      images: ic.get<ImageStore>(imageStorePluginType, imageStorePluginId),
      snapshotters,
      // Layers are applied through the differ plugin: disabling it disables unpacking too.
      unpacker: new Unpacker({
        content,
        snapshotters,
        differ: ic.get<LayerApplier>(differPluginType),
        log: ic.log,
      }),
      // Without leases (disabled in config) pulls are not leased.
      leases: ic.getOptional<LeaseManager>(leasePluginType, "manager"),
      maxConcurrentDownloads: count("max_concurrent_downloads", DEFAULT_MAX_CONCURRENT_DOWNLOADS),
      maxConcurrentUploads: count("max_concurrent_uploaded_layers", 3),
      configPath,
      defaultSnapshotter: snapshotter,
      decryptionKeysPaths: decryptionKeysPaths(ic.streamProcessors),
      pullStats: new PullStats(),
    };
  },
};
