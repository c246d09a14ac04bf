import { fromBinary } from "@bufbuild/protobuf";
import {
  containerStorePluginId,
  containerStorePluginType,
  eventsPluginType,
  metadataNamespacesPluginId,
  metadataPluginType,
  runtimePluginId,
  runtimePluginType,
  snapshotterPluginType,
} from "./ids.ts";
import { invalidArgument, isNotFound } from "../base/errors.ts";
import type { Container, ContainerStore } from "../core/containers/mod.ts";
import type { EventBus, EventPublisher } from "../core/events/mod.ts";
import { parseFilters } from "../core/filters/mod.ts";
import { formatGoDuration, parseGoDuration } from "../base/duration.ts";
import type { NamespaceStore } from "../core/namespaces/mod.ts";
import {
  type AutoRemoveHost,
  AutoRemover,
  type ObservedTask,
  type RestartContainer,
  type RestartHost,
  RestartLabels,
  RestartMonitor,
} from "../core/restart/mod.ts";
import { selfCommand } from "../base/self.ts";
import { outputClean } from "../base/spawn.ts";
import type { TaskManager } from "../core/runtime/mod.ts";
import type { Mount } from "../core/mount/mod.ts";
import type { Snapshotter } from "../core/snapshots/mod.ts";
import { ContainerUpdateSchema } from "../gen/events/container_pb.ts";
import { TaskExitSchema } from "../gen/events/task_pb.ts";
import { Status } from "../gen/types/task/task_pb.ts";
import type { PluginDef } from "./registry.ts";

/** containerd's plugin.InternalPlugin type. */
export const internalPluginType = "io.containerd.internal.v1";

/** containerd's default `interval`. */
const defaultInterval = "10s";
/** Deadlines of the monitor's calls to a shim, as containerd gives its shim calls. */
const stateTimeoutMs = 5_000;
const killWaitMs = 10_000;

/**
 * containerd's restart monitor, `io.containerd.internal.v1.restart`. Config
 * (`[plugins."io.containerd.internal.v1.restart"]`, or `[plugins.restart]` in a version 1 file):
 * `interval = "10s"`, how often every container labelled `containerd.io/restart.status` is checked.
 * Besides that loop, a task's exit (`/tasks/exit` of its init process) checks its container at once.
 * The same watch removes `berth run -d --rm` containers once their task exits (core/restart/auto_remove.ts).
 */
export const restartMonitorPlugin: PluginDef<
  { monitor: RestartMonitor; remover: AutoRemover; abort: AbortController }
> = {
  type: internalPluginType,
  id: "restart",
  requires: [
    eventsPluginType,
    containerStorePluginType,
    runtimePluginType,
    snapshotterPluginType,
    metadataPluginType,
  ],
  configKeys: ["interval"],
  init(ic) {
    const text = ic.config["interval"] ?? defaultInterval;
    if (typeof text !== "string") {
      throw invalidArgument(`Invalid restart interval ${JSON.stringify(text)}: use a duration such as "10s"`);
    }
    let intervalMs: number;
    try {
      intervalMs = parseGoDuration(text);
    } catch (err) {
      throw invalidArgument(`Invalid restart interval: ${(err as Error).message}`);
    }
    // As containerd: an interval of 0 means the default.
    if (intervalMs <= 0) intervalMs = parseGoDuration(defaultInterval);
    ic.exports["Interval"] = formatGoDuration(intervalMs);
    const bus = ic.get<EventBus>(eventsPluginType);
    const host = new DaemonRestartHost({
      containers: ic.get<ContainerStore>(containerStorePluginType, containerStorePluginId),
      runtime: ic.get<TaskManager>(runtimePluginType, runtimePluginId),
      snapshotters: ic.getAll<Snapshotter>(snapshotterPluginType),
      namespaces: ic.get<NamespaceStore>(metadataPluginType, metadataNamespacesPluginId),
      events: ic.events,
    });
    const monitor = new RestartMonitor(host, { intervalMs, log: ic.log });
    const remover = new AutoRemover(
      new DaemonAutoRemoveHost({
        containers: ic.get<ContainerStore>(containerStorePluginType, containerStorePluginId),
        runtime: ic.get<TaskManager>(runtimePluginType, runtimePluginId),
        namespaces: ic.get<NamespaceStore>(metadataPluginType, metadataNamespacesPluginId),
        address: ic.address,
      }),
      { log: ic.log },
    );
    const abort = new AbortController();
    watchExits(bus, monitor, remover, abort.signal);
    // After the plugins and the API socket (the removal's CLI calls it) are up.
    ic.onServing(() => {
      monitor.start();
      void remover.sweep();
    });
    return { monitor, remover, abort };
  },
  async close({ monitor, remover, abort }) {
    abort.abort();
    await monitor.close();
    await remover.settled();
  },
};

function watchExits(bus: EventBus, monitor: RestartMonitor, remover: AutoRemover, signal: AbortSignal): void {
  const filter = parseFilters(['topic=="/tasks/exit"']);
  (async () => {
    for await (const env of bus.subscribe({ filter, signal })) {
      const exit = fromBinary(TaskExitSchema, env.event.value);
      // An exec'd process's exit is not its container's.
      if (exit.id !== exit.containerId) continue;
      monitor.taskExited(env.namespace, exit.containerId);
      void remover.taskExited(env.namespace, exit.containerId);
    }
  })().catch(() => {/* the bus cut a subscriber that fell behind: the interval loop still runs */});
}

/**
 * Removes an exited `--rm` container by running this executable's own `rm -f -v` against the daemon, so
 * that what the Docker-style verbs made on the host (hosts entries, the log folder, anonymous volumes)
 * goes as a user's `berth rm` takes it; the data root is the one the container's state folder names.
 */
interface AutoRemoveDeps {
  readonly containers: ContainerStore;
  readonly runtime: TaskManager;
  readonly namespaces: NamespaceStore;
  /** The daemon's own API address, which the removal's CLI calls. */
  readonly address: string;
}

class DaemonAutoRemoveHost implements AutoRemoveHost {
  readonly #d: AutoRemoveDeps;

  constructor(deps: AutoRemoveDeps) {
    this.#d = deps;
  }

  labels(ns: string, id: string): Readonly<Record<string, string>> | undefined {
    try {
      return this.#d.containers.get(ns, id).labels;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async hasLiveTask(ns: string, id: string): Promise<boolean> {
    if (!this.#d.runtime.has(ns, id)) return false;
    const state = await this.#d.runtime.get(ns, id).state("", { timeoutMs: stateTimeoutMs });
    return state.status !== Status.STOPPED;
  }

  labelled(label: string): { ns: string; id: string }[] {
    return this.#d.namespaces.list().flatMap((n) =>
      this.#d.containers.list(n.name).filter((c) => c.labels[label] !== undefined).map((c) => ({
        ns: n.name,
        id: c.id,
      }))
    );
  }

  async remove(ns: string, id: string, labels: Readonly<Record<string, string>>): Promise<void> {
    const [program, ...head] = selfCommand("--address", ["-q", "-A", "--no-prompt"]);
    const dataRoot = dataRootOf(labels, ns, id);
    const args = [
      ...head,
      this.#d.address,
      "--namespace",
      ns,
      ...(dataRoot ? ["--data-root", dataRoot] : []),
      "rm",
      "-f",
      "-v",
      id,
    ];
    const out = await outputClean(program!, { args, stdin: "null" });
    const stderr = new TextDecoder().decode(out.stderr).trim();
    // Removed meanwhile by hand: nothing left to do.
    if (out.code !== 0 && !/No such container/i.test(stderr)) {
      throw new Error(`berth rm -f -v ${id} failed (exit ${out.code}): ${stderr}`);
    }
  }
}

/**
 * The data root of a Docker-style container, from its state folder (nerdctl's `nerdctl/state-dir`:
 * `<data root>/<8 hex>/containers/<namespace>/<id>`); undefined when it names none.
 */
export function dataRootOf(
  labels: Readonly<Record<string, string>>,
  ns: string,
  id: string,
): string | undefined {
  const dir = labels["nerdctl/state-dir"];
  const suffix = `/containers/${ns}/${id}`;
  if (!dir?.endsWith(suffix)) return undefined;
  const store = dir.slice(0, -suffix.length);
  const m = /^(\/.+)\/[0-9a-f]{8}$/.exec(store);
  return m?.[1];
}

interface HostDeps {
  readonly containers: ContainerStore;
  readonly runtime: TaskManager;
  readonly snapshotters: ReadonlyMap<string, Snapshotter>;
  readonly namespaces: NamespaceStore;
  readonly events: EventPublisher;
}

const observed: Readonly<Record<Status, ObservedTask["status"]>> = {
  [Status.UNKNOWN]: "unknown",
  [Status.CREATED]: "created",
  [Status.RUNNING]: "running",
  [Status.STOPPED]: "stopped",
  [Status.PAUSED]: "paused",
  [Status.PAUSING]: "pausing",
};

/** The monitor's verbs over the daemon's own container store and task manager. */
class DaemonRestartHost implements RestartHost {
  readonly #d: HostDeps;

  constructor(deps: HostDeps) {
    this.#d = deps;
  }

  namespaces(): string[] {
    return this.#d.namespaces.list().map((n) => n.name);
  }

  containers(ns: string): RestartContainer[] {
    return this.#d.containers.list(ns)
      .filter((c) => c.labels[RestartLabels.status] !== undefined)
      .map(restartContainer);
  }

  container(ns: string, id: string): RestartContainer | undefined {
    try {
      return restartContainer(this.#d.containers.get(ns, id));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async task(ns: string, id: string): Promise<ObservedTask> {
    if (!this.#d.runtime.has(ns, id)) return { status: "absent", exitStatus: 0 };
    let state;
    try {
      state = await this.#d.runtime.get(ns, id).state("", { timeoutMs: stateTimeoutMs });
    } catch (err) {
      // A task being created is not in the manager's list yet.
      if (isNotFound(err)) return { status: "created", exitStatus: 0 };
      throw err;
    }
    return { status: observed[state.status] ?? "unknown", exitStatus: state.exitStatus };
  }

  async removeTask(ns: string, id: string, signal: AbortSignal): Promise<void> {
    const { runtime } = this.#d;
    if (!runtime.has(ns, id)) return;
    const task = runtime.get(ns, id);
    const state = await task.state("", { timeoutMs: stateTimeoutMs });
    if (state.status !== Status.STOPPED) {
      const exited = task.wait("", { signal: AbortSignal.any([signal, AbortSignal.timeout(killWaitMs)]) });
      await task.kill(9, { all: true });
      await exited;
    }
    await runtime.delete(ns, id);
  }

  async startTask(
    ns: string,
    id: string,
    io: { stdout: string; stderr: string },
    signal: AbortSignal,
  ): Promise<number> {
    const { containers, runtime } = this.#d;
    const c = containers.get(ns, id);
    // As containerd's client NewTask: the container's snapshot is the task's rootfs.
    let rootfs: Mount[] = [];
    if (c.snapshotKey !== "") {
      const sn = this.#d.snapshotters.get(c.snapshotter);
      if (!sn) throw invalidArgument(`Snapshotter "${c.snapshotter}" of container "${id}" is not loaded`);
      rootfs = await sn.mounts(ns, c.snapshotKey);
    }
    const { task } = await runtime.create(ns, id, {
      spec: c.spec?.value ?? new Uint8Array(),
      rootfs,
      stdin: "",
      stdout: io.stdout,
      stderr: io.stderr,
      terminal: wantsTerminal(c.spec?.value),
      runtime: c.runtime.name,
      runtimeOptions: c.runtime.options,
      signal,
    });
    try {
      return await task.start("", { signal });
    } catch (err) {
      // A task left created would stay so: the monitor only replaces stopped or missing tasks.
      await runtime.delete(ns, id).catch(() => {});
      throw err;
    }
  }

  setLabels(ns: string, id: string, labels: Readonly<Record<string, string>>): void {
    const cur = this.#d.containers.get(ns, id);
    const c = this.#d.containers.update(ns, { ...cur, labels }, {
      fieldpaths: Object.keys(labels).map((k) => `labels.${k}`),
    });
    // As containerd's monitor, which updates through the containers service.
    this.#d.events.publish(ns, "/containers/update", ContainerUpdateSchema, {
      id: c.id,
      image: c.image,
      labels: { ...c.labels },
      snapshotKey: c.snapshotKey,
    });
  }
}

function restartContainer(c: Container): RestartContainer {
  const changed = c.updatedAt > c.createdAt ? c.updatedAt : c.createdAt;
  return { id: c.id, labels: c.labels, changedAtMs: Number(changed / 1_000_000n) };
}

/**
 * Whether the spec asks for a terminal (`docker run -t`). containerd's monitor creates every task
 * without one, and runc then refuses such a spec ("cannot allocate tty if runc will detach without
 * setting console socket"); the shim gives the task a pty and copies it to the log instead.
 */
function wantsTerminal(spec: Uint8Array | undefined): boolean {
  if (!spec?.length) return false;
  try {
    return (JSON.parse(new TextDecoder().decode(spec)) as { process?: { terminal?: unknown } }).process
      ?.terminal === true;
  } catch {
    return false;
  }
}
