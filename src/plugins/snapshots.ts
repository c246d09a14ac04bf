import { snapshotterPluginType } from "./ids.ts";
import {
  btrfsMountOf,
  BtrfsSnapshotter,
  NativeSnapshotter,
  OverlaySnapshotter,
  overlaySupported,
  type ProxySnapshotterOptions,
  type Snapshotter,
} from "../core/snapshots/mod.ts";
import { invalidArgument } from "../base/errors.ts";
import { type InitContext, type PluginDef, SkipPlugin } from "./registry.ts";

/**
 * containerd 1.6's `root_path`: where the snapshotter keeps its snapshots instead of the plugin's
 * folder under the daemon root (e.g. a btrfs mounted elsewhere). Exported as the plugin's "root".
 */
async function snapshotterRoot(ic: InitContext, id: string): Promise<string> {
  const rootPath = ic.config["root_path"] ?? "";
  if (typeof rootPath !== "string") {
    throw invalidArgument(`Invalid ${id} root_path ${JSON.stringify(rootPath)}: use a path`);
  }
  if (rootPath === "") return ic.root;
  await Deno.mkdir(rootPath, { recursive: true, mode: 0o700 });
  return rootPath;
}

/** Starts deleting what a crash left in the snapshotter's folder (interrupted removals and prepares). */
function withoutCrashLeftovers<T extends { removeCrashLeftovers(): number }>(ic: InitContext, sn: T): T {
  const n = sn.removeCrashLeftovers();
  if (n > 0) ic.log.info("removing snapshot folders a crash left behind", { folders: n });
  return sn;
}

/**
 * containerd's default snapshotter. Config: `mount_options = ["index=off", …]`, appended to every
 * overlay mount. Skipped (not failed) where overlay cannot be mounted on the root's file system.
 */
export const overlaySnapshotterPlugin: PluginDef<Snapshotter> = {
  type: snapshotterPluginType,
  id: "overlayfs",
  configKeys: ["mount_options", "root_path", "upperdir_label"],
  async init(ic) {
    const root = await snapshotterRoot(ic, "overlayfs");
    const opts = ic.config["mount_options"] ?? [];
    if (!Array.isArray(opts) || opts.some((o) => typeof o !== "string")) {
      throw invalidArgument(`Invalid overlayfs mount_options ${JSON.stringify(opts)}: use a list of strings`);
    }
    if (!(await overlaySupported(root))) {
      throw new SkipPlugin(`Overlay cannot be mounted on the file system of ${root}`);
    }
    const upperdirLabel = ic.config["upperdir_label"] ?? false;
    if (typeof upperdirLabel !== "boolean") {
      throw invalidArgument(
        `Invalid overlayfs upperdir_label ${JSON.stringify(upperdirLabel)}: use true or false`,
      );
    }
    ic.exports["root"] = root;
    return withoutCrashLeftovers(
      ic,
      new OverlaySnapshotter(root, ic.db, { mountOptions: opts as string[], upperdirLabel }),
    );
  },
  close: (s) => s.close(),
};

/** Copies each parent in full: works on any file system. */
export const nativeSnapshotterPlugin: PluginDef<Snapshotter> = {
  type: snapshotterPluginType,
  id: "native",
  configKeys: ["root_path"],
  async init(ic) {
    const root = await snapshotterRoot(ic, "native");
    ic.exports["root"] = root;
    return withoutCrashLeftovers(ic, new NativeSnapshotter(root, ic.db));
  },
  close: (s) => s.close(),
};

/**
 * Subvolumes and snapshots of a btrfs. Loaded only when its root is on btrfs: anywhere else it is
 * skipped, with containerd's wording.
 */
export const btrfsSnapshotterPlugin: PluginDef<Snapshotter> = {
  type: snapshotterPluginType,
  id: "btrfs",
  configKeys: ["root_path"],
  async init(ic) {
    const root = await snapshotterRoot(ic, "btrfs");
    ic.exports["root"] = root;
    const { device, fsType } = await btrfsMountOf(root);
    if (fsType !== "btrfs") {
      throw new SkipPlugin(
        `path ${root} (${fsType}) must be a btrfs filesystem to be used with the btrfs snapshotter: skip plugin`,
      );
    }
    return withoutCrashLeftovers(ic, new BtrfsSnapshotter(root, ic.db, { device }));
  },
  close: (s) => s.close(),
};

/**
 * `[proxy_plugins.NAME] type = "snapshot"`: a snapshotter served by another process over containerd's
 * Snapshots API. Loaded without connecting, as containerd: a proxy that is down fails only the calls
 * made while it is, each naming it and its address.
 */
export function proxySnapshotterPlugin(
  name: string,
  options: { address: string; transport: ProxySnapshotterOptions["transport"] },
): PluginDef<Snapshotter> {
  return {
    type: snapshotterPluginType,
    id: name,
    async init(ic) {
      ic.exports["address"] = options.address;
      const { ProxySnapshotter } = await import("../core/snapshots/proxy.ts");
      return new ProxySnapshotter({ name, address: options.address, transport: options.transport });
    },
    close: (s) => s.close(),
  };
}
