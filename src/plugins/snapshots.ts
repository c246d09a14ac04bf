import { snapshotterPluginType } from "./ids.ts";
import {
  NativeSnapshotter,
  OverlaySnapshotter,
  overlaySupported,
  type Snapshotter,
} from "../core/snapshots/mod.ts";
import { invalidArgument } from "../base/errors.ts";
import { type PluginDef, SkipPlugin } from "./registry.ts";

/**
 * containerd's default snapshotter. Config: `mount_options = ["index=off", …]`, appended to every
 * overlay mount. Skipped (not failed) where overlay cannot be mounted on the root's file system.
 */
export const overlaySnapshotterPlugin: PluginDef<Snapshotter> = {
  type: snapshotterPluginType,
  id: "overlayfs",
  configKeys: ["mount_options"],
  async init(ic) {
    const opts = ic.config["mount_options"] ?? [];
    if (!Array.isArray(opts) || opts.some((o) => typeof o !== "string")) {
      throw invalidArgument(`Invalid overlayfs mount_options ${JSON.stringify(opts)}: use a list of strings`);
    }
    if (!(await overlaySupported(ic.root))) {
      throw new SkipPlugin(`Overlay cannot be mounted on the file system of ${ic.root}`);
    }
    ic.exports["root"] = ic.root;
    return new OverlaySnapshotter(ic.root, ic.db, { mountOptions: opts as string[] });
  },
  close: (s) => s.close(),
};

/** Copies each parent in full: works on any file system. */
export const nativeSnapshotterPlugin: PluginDef<Snapshotter> = {
  type: snapshotterPluginType,
  id: "native",
  init(ic) {
    ic.exports["root"] = ic.root;
    return new NativeSnapshotter(ic.root, ic.db);
  },
  close: (s) => s.close(),
};
