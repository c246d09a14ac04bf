/**
 * CRI containers, as containerd 1.6's CRI runs them (pkg/cri/server/container_*.go): an ordinary
 * container and task in `k8s.io` inside a pod's sandbox, with its stdout and stderr copied by the daemon
 * into the CRI log file, its status kept in a file under the plugin's root so that exit codes and times
 * survive a restart, and its metadata in a container extension.
 */
import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import {
  failedPrecondition,
  invalidArgument,
  isNotFound,
  notFound,
  unknownError,
} from "../../base/errors.ts";
import { now, type UnixNanos } from "../../base/clock.ts";
import { writeFileAtomic } from "../../base/atomic_write.ts";
import type { BasicLogger } from "../../base/log.ts";
import type { ImageConfig } from "../../oci/opts.ts";
import { encodeSpec, SPEC_TYPE_URL } from "../../oci/spec.ts";
import {
  type ContainerConfig,
  ContainerConfigSchema,
  NamespaceMode,
} from "../../gen/k8s/cri/runtime/v1/api_pb.ts";
import type { AnyValue, Container, ContainerStore } from "../containers/mod.ts";
import type { LeaseManager } from "../leases/mod.ts";
import type { ShimTask, TaskManager } from "../runtime/mod.ts";
import type { Snapshotter } from "../snapshots/mod.ts";
import { type Hold, withLease } from "../transfer/mod.ts";
import type { CriConfig } from "./config.ts";
import { parseSignal, SIGNALS } from "../../base/signals.ts";
import { type AttachIo, type ContainerIo, openContainerIo } from "./container_io.ts";
import { fillVolumes, imageVolumes } from "./container_rootfs.ts";
import { rootfsUserDb } from "../mount/mod.ts";
import { containerSpec } from "./container_spec.ts";
import { runtimeOptions } from "./runtime_options.ts";
import { KIND_LABEL, type Sandbox } from "./sandboxes.ts";
import { generateId, IdIndex, NameIndex } from "./store.ts";

export const CONTAINER_METADATA_EXTENSION = "io.cri-containerd.container.metadata";
const CONTAINER_METADATA_TYPE = "github.com/containerd/cri/pkg/store/container/Metadata";

/** containerd's exit reasons and the exit code of a container that could not start. */
export const Reasons = {
  completed: "Completed",
  error: "Error",
  oomKilled: "OOMKilled",
  startError: "StartError",
} as const;
const START_ERROR_EXIT_CODE = 128;

export type ContainerState = "created" | "running" | "exited" | "unknown";

export interface ContainerMetadata {
  readonly id: string;
  readonly name: string;
  readonly sandboxId: string;
  readonly config: ContainerConfig;
  /** The image's id (config digest). */
  readonly imageRef: string;
  /** The image name the container was created from, as the request named it. */
  readonly imageName: string;
  readonly logPath: string;
  readonly stopSignal: string;
}

/** What containerd persists of a container's state (pkg/cri/store/container/status.go). */
export interface ContainerStatus {
  pid: number;
  createdAt: UnixNanos;
  startedAt: UnixNanos;
  finishedAt: UnixNanos;
  exitCode: number;
  reason: string;
  message: string;
  unknown: boolean;
  removing: boolean;
}

export class CriContainer {
  readonly metadata: ContainerMetadata;
  readonly status: ContainerStatus;
  /** The log copiers of a running container. */
  io?: ContainerIo;
  #stopped = Promise.withResolvers<void>();

  constructor(metadata: ContainerMetadata, status: ContainerStatus) {
    this.metadata = metadata;
    this.status = status;
    if (status.finishedAt !== 0n) this.#stopped.resolve();
  }

  get id(): string {
    return this.metadata.id;
  }

  get state(): ContainerState {
    if (this.status.unknown) return "unknown";
    if (this.status.finishedAt !== 0n) return "exited";
    if (this.status.startedAt !== 0n) return "running";
    return "created";
  }

  /** Resolves once the container has exited and its exit is recorded. */
  get stopped(): Promise<void> {
    return this.#stopped.promise;
  }

  markStopped(): void {
    this.#stopped.resolve();
  }
}

/** `<container>_<pod>_<pod namespace>_<pod uid>_<attempt>`, the name containerd reserves. */
export function containerName(config: ContainerConfig, sandbox: Sandbox): string {
  const p = sandbox.config.metadata!;
  return [config.metadata!.name, p.name, p.namespace, p.uid, String(config.metadata!.attempt)].join("_");
}

export function encodeContainerMetadata(m: ContainerMetadata): AnyValue {
  const doc = {
    Version: "v1",
    Metadata: {
      ID: m.id,
      Name: m.name,
      SandboxID: m.sandboxId,
      Config: toJson(ContainerConfigSchema, m.config),
      ImageRef: m.imageRef,
      ImageName: m.imageName,
      LogPath: m.logPath,
      StopSignal: m.stopSignal,
    },
  };
  return { typeUrl: CONTAINER_METADATA_TYPE, value: new TextEncoder().encode(JSON.stringify(doc)) };
}

export function decodeContainerMetadata(any: AnyValue): ContainerMetadata {
  const d = (JSON.parse(new TextDecoder().decode(any.value)) as {
    Metadata: {
      ID: string;
      Name: string;
      SandboxID: string;
      Config: JsonValue;
      ImageRef: string;
      ImageName?: string;
      LogPath: string;
      StopSignal: string;
    };
  }).Metadata;
  return {
    id: d.ID,
    name: d.Name,
    sandboxId: d.SandboxID,
    config: fromJson(ContainerConfigSchema, d.Config),
    imageRef: d.ImageRef,
    imageName: d.ImageName ?? "",
    logPath: d.LogPath,
    stopSignal: d.StopSignal,
  };
}

/** What building a container's spec needs; the CRI plugin supplies the builder. */
export interface ContainerDeps {
  readonly ns: string;
  readonly config: CriConfig;
  readonly containers: ContainerStore;
  readonly runtime: TaskManager;
  readonly snapshotters: ReadonlyMap<string, Snapshotter>;
  /** Holds a new container's snapshot until its record exists (none when leases are disabled). */
  readonly leases?: LeaseManager;
  readonly sandbox: (id: string) => Sandbox;
  readonly sandboxFiles: (
    id: string,
  ) => { hostname: string; hosts: string; resolvConf: string; devShm: string };
  /** A local image, by CRI image spec: never pulled for a container, as containerd does. */
  readonly localImage: (
    ref: string,
  ) => Promise<{ id: string; name: string; chainId: string; config: ImageConfig } | undefined>;
  readonly rootDir: string;
  readonly stateDir: string;
  readonly onContainer?: (kind: "create" | "delete", c: Container) => void;
  readonly log: BasicLogger;
}

export interface ContainerFilter {
  readonly id?: string;
  readonly state?: ContainerState;
  readonly podSandboxId?: string;
  readonly labelSelector?: Readonly<Record<string, string>>;
}

/** A stop signal as an image config names it (`SIGTERM`, `TERM`, `15`, `SIGRTMIN+3`). */
export function parseStopSignal(s: string): number {
  try {
    return parseSignal(s);
  } catch {
    throw invalidArgument(`Invalid stop signal "${s}"`);
  }
}

export class Containers {
  readonly #deps: ContainerDeps;
  readonly #index = new IdIndex<CriContainer>("Container");
  readonly #names = new NameIndex();

  constructor(deps: ContainerDeps) {
    this.#deps = deps;
  }

  get(id: string): CriContainer {
    return this.#index.get(id);
  }

  list(filter: ContainerFilter = {}): CriContainer[] {
    let id = filter.id ?? "";
    if (id !== "") {
      try {
        id = this.get(id).id;
      } catch {
        return [];
      }
    }
    let sandboxId = filter.podSandboxId ?? "";
    if (sandboxId !== "") {
      try {
        sandboxId = this.#deps.sandbox(sandboxId).id;
      } catch {
        return [];
      }
    }
    return this.#index.list().filter((c) =>
      (id === "" || c.id === id) &&
      (sandboxId === "" || c.metadata.sandboxId === sandboxId) &&
      (filter.state === undefined || c.state === filter.state) &&
      Object.entries(filter.labelSelector ?? {}).every(([k, v]) => c.metadata.config.labels[k] === v)
    );
  }

  rootOf(id: string): string {
    return `${this.#deps.rootDir}/containers/${id}`;
  }

  stateOf(id: string): string {
    return `${this.#deps.stateDir}/containers/${id}`;
  }

  /** CreateContainer: returns the id of a container in CREATED state. */
  async create(podSandboxId: string, config: ContainerConfig): Promise<string> {
    // Its snapshot is leased until the container record names it, as containerd's NewContainer does:
    // GC collects active snapshots nothing references.
    return await withLease(
      this.#deps.ns,
      (hold) => this.#create(podSandboxId, config, hold),
      { leases: this.#deps.leases },
    );
  }

  async #create(podSandboxId: string, config: ContainerConfig, hold: Hold): Promise<string> {
    if (!config.metadata) throw invalidArgument("Container config must include metadata");
    const d = this.#deps;
    let sandbox: Sandbox;
    try {
      sandbox = d.sandbox(podSandboxId);
    } catch (err) {
      throw notFound(`failed to find sandbox id "${podSandboxId}": ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (sandbox.state !== "ready") {
      // containerd asks the pod's task, which a stopped pod no longer has.
      throw notFound(
        `failed to get sandbox container task: no running task found: task ${sandbox.id} not found`,
      );
    }
    const id = generateId();
    const name = containerName(config, sandbox);
    try {
      this.#names.reserve(name, id);
    } catch (err) {
      throw unknownError(`failed to reserve container name "${name}": ${(err as Error).message}`);
    }
    const undo: (() => Promise<void>)[] = [];
    try {
      const ref = config.image?.image ?? "";
      const image = await d.localImage(ref);
      if (!image) throw notFound(`Failed to resolve image "${ref}": not found`);
      const runtime = d.config.runtimes[sandbox.metadata.runtimeHandler || d.config.defaultRuntimeName]!;
      await Deno.mkdir(this.rootOf(id), { recursive: true, mode: 0o755 });
      undo.push(() => Deno.remove(this.rootOf(id), { recursive: true }));
      await Deno.mkdir(this.stateOf(id), { recursive: true, mode: 0o755 });
      undo.push(() => Deno.remove(this.stateOf(id), { recursive: true }));
      const sn = this.#snapshotter();
      await hold(`snapshots/${d.config.snapshotter}`, id);
      const rootfs = await sn.prepare(d.ns, id, { parent: image.chainId });
      undo.push(() => sn.remove(d.ns, id).catch(() => {}));
      const volumes = d.config.ignoreImageDefinedVolumes
        ? []
        : imageVolumes(this.rootOf(id), image.config, config.mounts);
      await fillVolumes(rootfs, volumes);
      const spec = await containerSpec({
        id,
        sandboxId: sandbox.id,
        sandboxPid: sandbox.pid,
        targetPid: this.#targetPid(sandbox.id, config),
        config,
        sandboxConfig: sandbox.config,
        image: image.config,
        imageName: image.name,
        sandboxFiles: d.sandboxFiles(sandbox.id),
        volumeMounts: volumes,
        runtime,
        settings: d.config,
        shimGroup: d.config.shimGroup === "pod" ? sandbox.id : undefined,
        userDb: () => rootfsUserDb(rootfs),
      });
      const logDir = sandbox.config.logDirectory;
      const metadata: ContainerMetadata = {
        id,
        name,
        sandboxId: sandbox.id,
        config,
        imageRef: image.id,
        imageName: ref,
        logPath: logDir !== "" && config.logPath !== "" ? `${logDir}/${config.logPath}` : "",
        stopSignal: image.config.StopSignal ?? "",
      };
      const container = d.containers.create(d.ns, {
        id,
        labels: { ...config.labels, ...image.config.Labels, [KIND_LABEL]: "container" },
        image: image.name,
        runtime: { name: runtime.runtimeType, options: runtimeOptions(runtime) },
        spec: { typeUrl: SPEC_TYPE_URL, value: encodeSpec(spec) },
        snapshotter: d.config.snapshotter,
        snapshotKey: id,
        extensions: { [CONTAINER_METADATA_EXTENSION]: encodeContainerMetadata(metadata) },
        sandbox: sandbox.id,
      });
      d.onContainer?.("create", container);
      const status: ContainerStatus = {
        pid: 0,
        createdAt: container.createdAt,
        startedAt: 0n,
        finishedAt: 0n,
        exitCode: 0,
        reason: "",
        message: "",
        unknown: false,
        removing: false,
      };
      const c = new CriContainer(metadata, status);
      await this.#persist(c);
      this.#index.add(id, c);
      return id;
    } catch (err) {
      for (const u of undo.reverse()) await u().catch(() => {});
      this.#names.releaseByKey(id);
      throw err;
    }
  }

  /** containerd's validateTargetContainer: the PID of a running container of the same pod. */
  #targetPid(sandboxId: string, config: ContainerConfig): number | undefined {
    const ns = config.linux?.securityContext?.namespaceOptions;
    if (ns?.pid !== NamespaceMode.TARGET) return undefined;
    const fail = (why: string) => invalidArgument(`invalid target container: ${why}`);
    let target: CriContainer;
    try {
      target = this.get(ns.targetId);
    } catch {
      throw fail(`container "${ns.targetId}" does not exist: not found`);
    }
    if (target.metadata.sandboxId !== sandboxId) {
      throw fail(
        `container "${ns.targetId}" (sandbox ${target.metadata.sandboxId}) does not belong to sandbox ${sandboxId}`,
      );
    }
    if (target.state !== "running") {
      throw fail(
        `container "${ns.targetId}" is not running - in state CONTAINER_${target.state.toUpperCase()}`,
      );
    }
    return target.status.pid;
  }

  /** StartContainer: the task created with its stdio copied into the log, then started. */
  async start(id: string): Promise<void> {
    const d = this.#deps;
    const c = this.get(id);
    if (c.state !== "created") {
      // containerd's setContainerStarting: a plain error, so gRPC code Unknown.
      throw unknownError(
        `failed to set starting state for container "${c.id}": container is in CONTAINER_${c.state.toUpperCase()} state`,
      );
    }
    const record = d.containers.get(d.ns, c.id);
    const sn = this.#snapshotter();
    try {
      const sandbox = d.sandbox(c.metadata.sandboxId);
      if (sandbox.state !== "ready") {
        throw unknownError(`sandbox container "${sandbox.id}" is not running`);
      }
      const fifos = await this.#openIo(c);
      const { task, pid } = await d.runtime.create(d.ns, c.id, {
        spec: record.spec!.value,
        rootfs: await sn.mounts(d.ns, c.id),
        stdin: fifos.stdin,
        stdout: fifos.stdout,
        stderr: fifos.stderr,
        terminal: c.metadata.config.tty,
        runtime: record.runtime.name,
        runtimeOptions: record.runtime.options,
      });
      // Taken before the start: a process that exits at once (its exit time from the shim) must not
      // look as if it finished before it started.
      const startedAt = now();
      await task.start();
      if (c.status.finishedAt === 0n) c.status.pid = pid;
      c.status.startedAt = startedAt;
      await this.#persist(c);
    } catch (err) {
      await c.io?.close();
      c.io = undefined;
      c.status.finishedAt = now();
      c.status.exitCode = START_ERROR_EXIT_CODE;
      c.status.reason = Reasons.startError;
      c.status.message = (err as Error).message;
      c.markStopped();
      await this.#persist(c);
      await d.runtime.delete(d.ns, c.id).catch(() => {});
      throw err;
    }
  }

  /** StopContainer: the stop signal, `timeout` seconds for it, then SIGKILL; idempotent. */
  async stop(id: string, timeoutSeconds: number): Promise<void> {
    const c = this.get(id);
    if (c.state !== "running" && c.state !== "unknown") return;
    const task = this.#task(c);
    if (!task) {
      await this.onExit(c.id, { exitStatus: 255, exitedAt: now() });
      return;
    }
    if (timeoutSeconds > 0) {
      const signal = c.metadata.stopSignal ? parseStopSignal(c.metadata.stopSignal) : SIGNALS.SIGTERM!;
      await task.kill(signal).catch((err) => {
        if (!isNotFound(err)) throw err;
      });
      if (await settles(c.stopped, timeoutSeconds * 1000)) return;
    }
    await task.kill(SIGNALS.SIGKILL!).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
    if (!await settles(c.stopped, 30_000)) {
      throw failedPrecondition(`Container "${c.id}" did not stop within 30 s of SIGKILL`);
    }
  }

  /** RemoveContainer: stopped first when it runs; its record, snapshot, status and folders go. */
  async remove(id: string): Promise<void> {
    let c: CriContainer;
    try {
      c = this.get(id);
    } catch (err) {
      if (isNotFound(err)) return; // containerd answers success for a container that is gone
      throw err;
    }
    if (c.state === "running" || c.state === "unknown") await this.stop(c.id, 0);
    const d = this.#deps;
    c.status.removing = true;
    await d.runtime.delete(d.ns, c.id).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
    try {
      const record = d.containers.get(d.ns, c.id);
      d.containers.delete(d.ns, c.id);
      d.onContainer?.("delete", record);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    await this.#snapshotter().remove(d.ns, c.id).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
    await Deno.remove(this.rootOf(c.id), { recursive: true }).catch(() => {});
    await Deno.remove(this.stateOf(c.id), { recursive: true }).catch(() => {});
    this.#names.releaseByKey(c.id);
    this.#index.delete(c.id);
  }

  /** A TaskExit for the container's own process: the task is deleted and the exit recorded. */
  async onExit(id: string, exit: { exitStatus: number; exitedAt: UnixNanos }): Promise<void> {
    if (!this.#index.has(id)) return;
    const c = this.#index.get(id);
    const d = this.#deps;
    await d.runtime.delete(d.ns, id).catch((err) => {
      if (!isNotFound(err)) {
        d.log.warn("cannot delete the task of an exited container", { id, error: String(err) });
      }
    });
    // The log copiers end when the shim closes the FIFOs; wait for the last lines, not forever.
    if (c.io) await settles(c.io.done, 2000);
    await c.io?.close();
    c.io = undefined;
    if (c.status.finishedAt === 0n) {
      c.status.pid = 0;
      c.status.finishedAt = exit.exitedAt;
      c.status.exitCode = exit.exitStatus;
    }
    c.status.unknown = false;
    await this.#persist(c);
    c.markStopped();
  }

  /** A TaskOOM for the container: its exit reason becomes OOMKilled. */
  async onOom(id: string): Promise<void> {
    if (!this.#index.has(id)) return;
    const c = this.#index.get(id);
    c.status.reason = Reasons.oomKilled;
    await this.#persist(c);
  }

  /** The exit reason as ContainerStatus reports it. */
  reasonOf(c: CriContainer): string {
    if (c.state !== "exited") return c.status.reason;
    return c.status.reason || (c.status.exitCode === 0 ? Reasons.completed : Reasons.error);
  }

  async reopenLog(id: string): Promise<void> {
    const c = this.get(id);
    if (c.state !== "running" || !c.io) throw failedPrecondition(`Container "${c.id}" is not running`);
    await c.io.reopen();
  }

  /** Attach: until the container exits (or the client's stdin ends); a container not running is an error. */
  async attach(id: string, io: AttachIo): Promise<void> {
    const c = this.get(id);
    if (c.state !== "running" || !c.io) {
      throw failedPrecondition(`Container "${c.id}" is in ${c.state.toUpperCase()} state`);
    }
    await c.io.attach(io);
  }

  /** The task of a running container, for exec, stats and updates. */
  task(id: string): ShimTask {
    const c = this.get(id);
    const t = this.#task(c);
    if (!t || c.state !== "running") throw failedPrecondition(`Container "${c.id}" is not running`);
    return t;
  }

  /** After a daemon restart: containers from their records and status files; running ones reattached. */
  async recover(): Promise<void> {
    const d = this.#deps;
    for (const record of d.containers.list(d.ns, { filters: [`labels."${KIND_LABEL}"==container`] })) {
      const ext = record.extensions[CONTAINER_METADATA_EXTENSION];
      if (!ext) continue;
      try {
        const metadata = decodeContainerMetadata(ext);
        const status = await this.#readStatus(metadata.id, record.createdAt);
        const c = new CriContainer(metadata, status);
        this.#names.reserve(metadata.name, metadata.id);
        this.#index.add(metadata.id, c);
        await this.#settle(c);
      } catch (err) {
        d.log.warn("cannot recover a CRI container", { id: record.id, error: String(err) });
      }
    }
  }

  async #settle(c: CriContainer): Promise<void> {
    if (c.state !== "running" && c.state !== "created") return;
    const task = this.#task(c);
    if (!task) {
      // Started before and no task now: it exited while the daemon was down without a record.
      if (c.state === "running") await this.onExit(c.id, { exitStatus: 255, exitedAt: now() });
      return;
    }
    const st = await task.state("", { timeoutMs: 5000 }).catch(() => undefined);
    if (st && (st.status === 2 /* RUNNING */ || st.status === 4 /* PAUSED */)) {
      if (c.state === "running") await this.#openIo(c, { reattach: true });
      return;
    }
    const exitedAt = st?.exitedAt
      ? BigInt(st.exitedAt.seconds) * 1_000_000_000n + BigInt(st.exitedAt.nanos)
      : now();
    await this.onExit(c.id, { exitStatus: st?.exitStatus ?? 255, exitedAt });
  }

  #task(c: CriContainer): ShimTask | undefined {
    try {
      return this.#deps.runtime.get(this.#deps.ns, c.id);
    } catch {
      return undefined;
    }
  }

  #snapshotter(): Snapshotter {
    const sn = this.#deps.snapshotters.get(this.#deps.config.snapshotter);
    if (!sn) throw failedPrecondition(`Snapshotter "${this.#deps.config.snapshotter}" is not loaded`);
    return sn;
  }

  /** The container's FIFOs and log copiers (container_io.ts), kept on the container. */
  async #openIo(
    c: CriContainer,
    options: { reattach?: boolean } = {},
  ): Promise<{ stdin: string; stdout: string; stderr: string }> {
    const { paths, io } = await openContainerIo({
      id: c.id,
      dir: `${this.stateOf(c.id)}/io`,
      config: c.metadata.config,
      logPath: c.metadata.logPath,
      maxLogLineSize: this.#deps.config.maxContainerLogLineSize,
      reattach: options.reattach,
    });
    c.io = io;
    return paths;
  }

  async #persist(c: CriContainer): Promise<void> {
    const s = c.status;
    const doc = {
      Version: "v1",
      Status: {
        Pid: s.pid,
        CreatedAt: String(s.createdAt),
        StartedAt: String(s.startedAt),
        FinishedAt: String(s.finishedAt),
        ExitCode: s.exitCode,
        Reason: s.reason,
        Message: s.message,
        Removing: s.removing,
        Unknown: s.unknown,
      },
    };
    await Deno.mkdir(this.rootOf(c.id), { recursive: true });
    await writeFileAtomic(`${this.rootOf(c.id)}/status`, JSON.stringify(doc));
  }

  async #readStatus(id: string, createdAt: UnixNanos): Promise<ContainerStatus> {
    try {
      const s = (JSON.parse(await Deno.readTextFile(`${this.rootOf(id)}/status`)) as {
        Status: Record<string, unknown>;
      }).Status;
      return {
        pid: Number(s.Pid ?? 0),
        createdAt: BigInt(String(s.CreatedAt ?? createdAt)),
        startedAt: BigInt(String(s.StartedAt ?? 0)),
        finishedAt: BigInt(String(s.FinishedAt ?? 0)),
        exitCode: Number(s.ExitCode ?? 0),
        reason: String(s.Reason ?? ""),
        message: String(s.Message ?? ""),
        unknown: false,
        removing: false,
      };
    } catch {
      // No status file: containerd marks such a container unknown.
      return {
        pid: 0,
        createdAt,
        startedAt: 0n,
        finishedAt: 0n,
        exitCode: 0,
        reason: "",
        message: "",
        unknown: true,
        removing: false,
      };
    }
  }
}

/** Whether `p` settles within `ms`. */
async function settles(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((r) => timer = setTimeout(() => r(false), ms));
  try {
    return await Promise.race([p.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}
