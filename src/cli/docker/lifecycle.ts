/**
 * A Docker-style container's life after create, as nerdctl drives containerd: start a task whose
 * output goes to the json-file log, stop with the image's stop signal then SIGKILL after a timeout,
 * remove with its snapshot, files and (with -v) anonymous volumes. A task that stopped is deleted by
 * `stop` (its postStop hook releases the network); its exit status stays on the container as labels.
 */
import { Code } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import type { BerthClient } from "../../client/mod.ts";
import type { Container } from "../../gen/services/containers/v1/containers_pb.ts";
import { Status } from "../../gen/types/task/task_pb.ts";
import { parseSignal } from "../../base/signals.ts";
import { failedPrecondition } from "../../base/errors.ts";
import { jsonLabel, LABELS } from "../../docker/labels.ts";
import { nameOf } from "../../docker/names.ts";
import type { DockerPaths } from "../../docker/paths.ts";
import type { DockerHost } from "./host.ts";
import { isCode } from "../../client/errors.ts";

/** The task's status, or undefined when the container has none. */
export async function taskStatus(
  client: BerthClient,
  id: string,
): Promise<{ status: Status; pid: number; exitStatus: number } | undefined> {
  try {
    const { process: p } = await client.tasks.get({ containerId: id });
    return p ? { status: p.status, pid: p.pid, exitStatus: p.exitStatus } : undefined;
  } catch (err) {
    if (isCode(err, Code.NotFound)) return undefined;
    throw err;
  }
}

/** Sets (or with `undefined`, removes) labels of a container, only those. */
export async function setLabels(
  client: BerthClient,
  id: string,
  labels: Record<string, string | undefined>,
): Promise<void> {
  const set: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (v !== undefined) set[k] = v;
  await client.containers.update({
    container: { id, labels: set },
    updateMask: create(FieldMaskSchema, { paths: Object.keys(labels).map((k) => `labels.${k}`) }),
  });
}

/**
 * Deletes the container's stopped task (running the postStop hook that releases its network) and keeps
 * its exit status and time on the container for `ps -a` and `inspect`.
 */
export async function deleteStoppedTask(client: BerthClient, id: string): Promise<void> {
  try {
    const res = await client.tasks.delete({ containerId: id });
    const at = res.exitedAt
      ? new Date(Number(res.exitedAt.seconds) * 1000 + res.exitedAt.nanos / 1e6)
      : new Date();
    await setLabels(client, id, {
      [LABELS.exitCode]: String(res.exitStatus),
      [LABELS.finishedAt]: at.toISOString(),
    });
  } catch (err) {
    if (!isCode(err, Code.NotFound)) throw err;
  }
}

/** Starts the container's task, its output to the json-file log (an old stopped task is deleted first). */
export async function startContainer(client: BerthClient, c: Container): Promise<number> {
  const current = await taskStatus(client, c.id);
  if (current && (current.status === Status.RUNNING || current.status === Status.PAUSED)) return current.pid;
  if (current) await deleteStoppedTask(client, c.id);
  const logUri = c.labels[LABELS.logUri] ?? "";
  const terminal = spec(c).process?.terminal === true;
  if (c.labels[LABELS.restartPolicy]) {
    await setLabels(client, c.id, {
      [LABELS.restartStatus]: "running",
      [LABELS.restartExplicitlyStopped]: undefined,
    });
  }
  const created = await client.tasks.create({ containerId: c.id, stdout: logUri, stderr: logUri, terminal });
  try {
    await client.tasks.start({ containerId: c.id });
  } catch (err) {
    await client.tasks.delete({ containerId: c.id }).catch(() => {});
    throw err;
  }
  return created.pid;
}

function spec(c: Container): { process?: { terminal?: boolean } } {
  if (!c.spec?.value.length) return {};
  try {
    return JSON.parse(new TextDecoder().decode(c.spec.value));
  } catch {
    return {};
  }
}

/**
 * Stops the container as `docker stop`: its stop signal, then SIGKILL after `timeoutS`; the task is
 * deleted (network released) and the restart monitor told it was stopped on purpose.
 */
export async function stopContainer(client: BerthClient, c: Container, timeoutS = 10): Promise<void> {
  if (c.labels[LABELS.restartPolicy]) {
    // Docker's "manually stopped": the monitor leaves it down; at the daemon's next start an `always`
    // container comes back and an `unless-stopped` one does not (src/core/restart).
    await setLabels(client, c.id, { [LABELS.restartExplicitlyStopped]: "true" });
  }
  const current = await taskStatus(client, c.id);
  if (!current) return;
  if (
    current.status === Status.RUNNING || current.status === Status.PAUSED || current.status === Status.CREATED
  ) {
    const signal = parseSignal(c.labels[LABELS.stopSignal] || "SIGTERM");
    await killAndWait(client, c.id, signal, timeoutS * 1000, current.status === Status.PAUSED);
  }
  await deleteStoppedTask(client, c.id);
}

/**
 * Sends `signal` and waits up to `timeoutMs` for the exit; then SIGKILL and wait for that. `paused`: the
 * status the caller just read (a paused task is resumed after the signal, so that it can act on it).
 */
async function killAndWait(
  client: BerthClient,
  id: string,
  signal: number,
  timeoutMs: number,
  paused: boolean,
): Promise<void> {
  const ctl = new AbortController();
  const waiting = client.tasks.wait({ containerId: id }, { signal: ctl.signal, timeoutMs: 0 });
  waiting.catch(() => {});
  try {
    if (signal !== 9 && timeoutMs > 0) {
      await client.tasks.kill({ containerId: id, signal, all: false });
      if (paused) await client.tasks.resume({ containerId: id }).catch(() => {});
      const timer = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), timeoutMs));
      const first = await Promise.race([waiting.then(() => "exited" as const), timer]);
      if (first === "exited") return;
    }
    await client.tasks.kill({ containerId: id, signal: 9, all: true });
    if (paused) await client.tasks.resume({ containerId: id }).catch(() => {});
    await waiting;
  } catch (err) {
    if (!isCode(err, Code.NotFound)) throw err;
  } finally {
    ctl.abort();
  }
}

/** Sends a signal to the container's main process (`docker kill`). */
export async function killContainer(client: BerthClient, c: Container, signal: string): Promise<void> {
  const current = await taskStatus(client, c.id);
  if (!current || current.status !== Status.RUNNING && current.status !== Status.PAUSED) {
    throw failedPrecondition(`Container ${nameOf(c)} is not running`);
  }
  if (c.labels[LABELS.restartPolicy]) {
    // docker kill does not count as a stop by the user: the policy may bring it back.
  }
  await client.tasks.kill({ containerId: c.id, signal: parseSignal(signal), all: false });
}

export interface RemoveOptions {
  readonly force?: boolean;
  /** Remove its anonymous volumes too (`rm -v`). */
  readonly volumes?: boolean;
}

/** Removes the container, as `docker rm`: its task, record, snapshot and files. */
export async function removeContainer(
  client: BerthClient,
  paths: DockerPaths,
  host: DockerHost,
  c: Container,
  options: RemoveOptions = {},
): Promise<void> {
  const current = await taskStatus(client, c.id);
  if (current && (current.status === Status.RUNNING || current.status === Status.PAUSED)) {
    if (!options.force) {
      throw failedPrecondition(
        `You cannot remove a running container ${nameOf(c)}: stop it first (berth stop) or use rm -f`,
      );
    }
    if (c.labels[LABELS.restartPolicy]) {
      await setLabels(client, c.id, {
        [LABELS.restartStatus]: "stopped",
        [LABELS.restartExplicitlyStopped]: "true",
      });
    }
    await killAndWait(client, c.id, 9, 0, current.status === Status.PAUSED);
  }
  if (current) {
    await client.tasks.delete({ containerId: c.id }).catch((err) => {
      if (!isCode(err, Code.NotFound)) throw err;
    });
  }
  await client.containers.delete({ id: c.id }).catch((err) => {
    if (!isCode(err, Code.NotFound)) throw err;
  });
  // The container is gone: its snapshot and its files on this host go side by side.
  const snapshot = c.snapshotKey && c.snapshotter
    ? client.snapshots.remove({ snapshotter: c.snapshotter, key: c.snapshotKey }).then(() => {}, (err) => {
      if (!isCode(err, Code.NotFound)) throw err;
    })
    : Promise.resolve();
  const dir = c.labels[LABELS.stateDir];
  await Promise.all([
    snapshot,
    host.forgetHosts(paths, c.id).catch(() => {}),
    dir && dir.startsWith(`${paths.dataStore}/containers/`)
      ? Deno.remove(dir, { recursive: true }).catch(() => {})
      : undefined,
  ]);
  if (options.volumes) {
    for (const name of jsonLabel<string[]>(c.labels, LABELS.anonymousVolumes, [])) {
      await host.removeVolume(paths, name).catch(() => {});
    }
  }
}
