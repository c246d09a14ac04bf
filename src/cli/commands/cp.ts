/**
 * `berth cp` as docker's: files and folders between a container and the host, or a tar stream (`-`).
 * A running container is reached through `/proc/<pid>/root` (its view, volumes and binds included); a
 * stopped one through its rootfs snapshot, mounted for the copy and always unmounted after.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import type { BerthClient } from "../../client/mod.ts";
import { copyPath, parseCpArg, tarFromContainer, untarIntoContainer } from "../../docker/cp.ts";
import { resolveContainer } from "../../docker/names.ts";
import { Status } from "../../gen/types/task/task_pb.ts";
import { withClient } from "../context.ts";
import { mountSnapshot, unmountSnapshot } from "../host/mount.ts";

interface CpFlags {
  followLink?: boolean;
  archive?: boolean;
}

/** The pid whose root is the container's, when its task has processes. */
async function taskPid(client: BerthClient, id: string): Promise<number | undefined> {
  try {
    const { process } = await client.tasks.get({ containerId: id });
    const live = [Status.RUNNING, Status.PAUSED, Status.PAUSING, Status.CREATED];
    return process && process.pid > 0 && live.includes(process.status) ? process.pid : undefined;
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.NotFound) return undefined;
    throw err;
  }
}

/**
 * Runs `fn` with the host folder that is the container's root: its task's `/proc/<pid>/root`, or its
 * snapshot mounted on a temporary folder (unmounted and removed whatever `fn` does).
 */
export async function withContainerRoot<T>(
  client: BerthClient,
  ref: string,
  fn: (root: string) => Promise<T>,
): Promise<T> {
  const container = await resolveContainer(client, ref);
  const pid = await taskPid(client, container.id);
  if (pid !== undefined) return await fn(`/proc/${pid}/root`);
  if (!container.snapshotKey) {
    throw new Error(`Container ${ref} has no root filesystem snapshot to copy with`);
  }
  const { mounts } = await client.snapshots.mounts({
    snapshotter: container.snapshotter,
    key: container.snapshotKey,
  });
  const target = await Deno.makeTempDir({ prefix: "berth-cp-" });
  try {
    mountSnapshot(mounts, target);
    try {
      return await fn(target);
    } finally {
      unmountSnapshot(target);
    }
  } finally {
    await Deno.remove(target).catch(() => {});
  }
}

export function cpCommand(program: Command): void {
  program.command("cp")
    .description(
      "Copy files/folders between a container and the local filesystem\n" +
        "  berth cp [-aL] CONTAINER:SRC_PATH DEST_PATH|-\n  berth cp [-aL] SRC_PATH|- CONTAINER:DEST_PATH",
    )
    .argument("<src>").argument("<dest>")
    .option("-L, --follow-link", "always follow a symlink in SRC_PATH")
    .option("-a, --archive", "archive mode (keep uid/gid of the source)")
    .action(async (srcArg: string, destArg: string, opts: CpFlags, cmd: Command) => {
      const src = srcArg === "-" ? { path: "-" } : parseCpArg(srcArg);
      const dest = destArg === "-" ? { path: "-" } : parseCpArg(destArg);
      if (src.container !== undefined && dest.container !== undefined) {
        throw new Error("Copying between containers is not supported");
      }
      if (src.container === undefined && dest.container === undefined) {
        throw new Error("Must specify at least one container source: CONTAINER:PATH");
      }
      const options = { followLink: opts.followLink, archive: opts.archive };
      await withClient(cmd, async (client) => {
        if (src.container !== undefined) {
          await withContainerRoot(client, src.container, async (root) => {
            if (dest.path === "-") await tarFromContainer(root, src.path, Deno.stdout.writable, options);
            else await copyPath({ root, path: src.path }, { path: dest.path }, options);
          });
        } else {
          await withContainerRoot(client, dest.container!, async (root) => {
            if (src.path === "-") {
              await untarIntoContainer(Deno.stdin.readable, root, dest.path, {
                ...options,
                onSkip: (name, why) => console.error(`berth: Skipped ${name}: ${why}`),
              });
            } else await copyPath({ path: src.path }, { root, path: dest.path }, options);
          });
        }
      });
    });
}
