/**
 * What `run`, `tasks start|attach|exec|rm` and `containers rm` share about a task: runTask(), the
 * create-attach-start-wait sequence with this process's stdio on the task's FIFOs; attaching, relaying
 * signals or window sizes; deleting a task; and exiting with its status.
 */
import type { BerthClient } from "../client/mod.ts";
import { rootfsOf, type SnapshotMount } from "../client/mounts.ts";
import { Status } from "../gen/types/task/task_pb.ts";
import { createFifoSet, holdFifos, isOwnFifo, removeFifoDir, stdinIsDevNull } from "./host/stdio.ts";
import { attachLocal, OUTPUT_DRAIN_MS, relay } from "./task_attach.ts";

export { attachLocal, OUTPUT_DRAIN_MS, relay } from "./task_attach.ts";
export { exitWith } from "./exit.ts";

export interface TaskIO {
  readonly terminal: boolean;
  /** Start and return at once: FIFOs are made but not read (like ctr -d), kept for `tasks attach`. */
  readonly detach?: boolean;
  readonly nullIO?: boolean;
  readonly fifoDir?: string;
  /** The container's snapshot mounts, sent as the task's rootfs (as ctr does; containerd needs them). */
  readonly rootfs?: readonly SnapshotMount[];
}

/**
 * Creates the task of container `id` with FIFOs wired to this process's stdio, starts it and (unless
 * detached) waits for it, deletes it and returns its exit status. A task that fails to start is deleted.
 */
export async function runTask(client: BerthClient, id: string, options: TaskIO): Promise<number> {
  // Detached, the stdin FIFO stays for a later `tasks attach` to type into.
  const fifos = options.nullIO ? undefined : await createFifoSet(id, {
    terminal: options.terminal,
    root: options.fifoDir,
    stdin: options.detach || options.terminal || !stdinIsDevNull(),
  });
  const local = fifos && !options.detach ? attachLocal(client.tasks, fifos, id) : undefined;
  // Detached, nobody reads: hold the output FIFOs open until the task started, as ctr does while it
  // lives, so the shim's writer finds a reader; the shim keeps its own read end afterwards.
  const release = fifos && options.detach ? holdFifos([fifos.stdout, fifos.stderr]) : () => {};
  const cleanup = async () => {
    local?.detach();
    release();
    if (fifos) await Deno.remove(fifos.dir, { recursive: true }).catch(() => {});
  };
  try {
    await client.tasks.create({
      containerId: id,
      rootfs: rootfsOf(options.rootfs ?? []),
      stdin: fifos?.stdin ?? "",
      stdout: fifos?.stdout ?? "",
      stderr: fifos?.stderr ?? "",
      terminal: options.terminal,
    });
  } catch (err) {
    await cleanup();
    throw err;
  }
  // Asked before Start, as ctr does, so that a fast exit is never missed.
  const waiting = options.detach ? undefined : client.tasks.wait({ containerId: id }, { timeoutMs: 0 });
  waiting?.catch(() => {});
  try {
    await client.tasks.start({ containerId: id });
  } catch (err) {
    await client.tasks.delete({ containerId: id }).catch(() => {});
    await cleanup();
    throw err;
  }
  if (options.detach) {
    release();
    return 0;
  }
  const stop = relay(client.tasks, id, "", options.terminal);
  try {
    const res = await waiting!;
    await local?.io.wait(OUTPUT_DRAIN_MS);
    await client.tasks.delete({ containerId: id });
    return res.exitStatus;
  } finally {
    stop();
    await cleanup();
  }
}

/** Deletes a task (killing it first with `force`) and removes its FIFO folder when Berth made it. */
export async function deleteTask(
  client: BerthClient,
  id: string,
  options: { force?: boolean; execId?: string } = {},
) {
  const execId = options.execId ?? "";
  const { process: p } = await client.tasks.get({ containerId: id, execId });
  if (p && p.status !== Status.STOPPED && p.status !== Status.CREATED) {
    if (!options.force) {
      throw new Error(`Cannot delete task ${id}: it is ${Status[p.status]}; stop it first or use --force`);
    }
    const waiting = client.tasks.wait({ containerId: id, execId }, { timeoutMs: 0 });
    await client.tasks.kill({ containerId: id, execId, signal: 9, all: execId === "" });
    await waiting;
  }
  const res = execId
    ? await client.tasks.deleteProcess({ containerId: id, execId })
    : await client.tasks.delete({ containerId: id });
  for (const path of [p?.stdin, p?.stdout, p?.stderr]) {
    if (path && isOwnFifo(path)) await removeFifoDir(path);
  }
  return res.exitStatus;
}
