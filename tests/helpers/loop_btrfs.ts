/**
 * A btrfs made by a test: a sparse file, mkfs.btrfs, a loop device and a mount. dispose() unmounts,
 * detaches the loop device and deletes the file; it is also run when the process unloads, so a failed
 * or aborted test leaves no mount or loop device behind.
 */
import { removeSubvolumes } from "../../src/core/snapshots/mod.ts";

export interface LoopBtrfs {
  /** Where the file system is mounted. */
  readonly mountpoint: string;
  readonly device: string;
  dispose(): Promise<void>;
}

function run(cmd: string, args: string[]): string {
  const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** Whether this host can make one: root, mkfs.btrfs and the btrfs module. */
export function loopBtrfsAvailable(): boolean {
  if (Deno.uid() !== 0) return false;
  try {
    run("mkfs.btrfs", ["--version"]);
  } catch {
    return false;
  }
  return Deno.readTextFileSync("/proc/filesystems").includes("btrfs") ||
    new Deno.Command("modprobe", { args: ["btrfs"], stderr: "null" }).outputSync().success;
}

export async function makeLoopBtrfs(options: { sizeMiB?: number } = {}): Promise<LoopBtrfs> {
  const dir = await Deno.makeTempDir({ prefix: "berth-btrfs-" });
  const image = `${dir}/fs.img`;
  const mountpoint = `${dir}/mnt`;
  let device = "";
  let mounted = false;
  const disposeSync = () => {
    if (mounted) {
      try {
        run("umount", [mountpoint]);
      } catch {
        run("umount", ["-l", mountpoint]);
      }
      mounted = false;
    }
    if (device !== "") {
      try {
        run("losetup", ["-d", device]);
      } catch { /* already gone */ }
      device = "";
    }
    Deno.removeSync(dir, { recursive: true });
  };
  const onUnload = () => {
    try {
      disposeSync();
    } catch { /* unload must not throw */ }
  };
  globalThis.addEventListener("unload", onUnload);
  try {
    // 300 MiB is btrfs's comfortable minimum with mixed block groups off.
    const f = await Deno.create(image);
    await f.truncate((options.sizeMiB ?? 512) * 1024 * 1024);
    f.close();
    run("mkfs.btrfs", ["-q", image]);
    await Deno.mkdir(mountpoint);
    device = run("losetup", ["--find", "--show", image]);
    run("mount", ["-t", "btrfs", device, mountpoint]);
    mounted = true;
  } catch (err) {
    globalThis.removeEventListener("unload", onUnload);
    disposeSync();
    throw err;
  }
  return {
    mountpoint,
    get device() {
      return device;
    },
    async dispose() {
      globalThis.removeEventListener("unload", onUnload);
      // Leftover read-only subvolumes do not matter: the whole file system goes with the loop file.
      await removeSubvolumes(mountpoint).catch(() => {});
      disposeSync();
    },
  };
}
