/**
 * The CRI's verbs over Berth's core (the image half and runtime status so far). The gRPC handlers in
 * src/services/cri.ts translate messages and call these; all state lives in the core stores of the
 * `k8s.io` namespace.
 */
import { create } from "@bufbuild/protobuf";
import {
  failedPrecondition,
  invalidArgument,
  isNotFound,
  notFound,
  unknownError,
} from "../../base/errors.ts";
import { withUpdatedResources } from "./container_spec.ts";
import type { ImageConfig } from "../../oci/opts.ts";
import {
  ContainerConfigSchema,
  type ContainerResources,
  ContainerResourcesSchema,
  type LinuxContainerResources,
  type PodSandboxConfig,
  PodSandboxConfigSchema,
} from "../../gen/k8s/cri/runtime/v1/api_pb.ts";
import { goJson } from "./go_json.ts";
import type { Container, ContainerStore } from "../containers/mod.ts";
import type { TaskManager } from "../runtime/mod.ts";
import { type PodNetwork, type Sandbox, Sandboxes } from "./sandboxes.ts";
import { Containers, type CriContainer } from "./containers.ts";
import { execInContainer, type ExecRequest } from "./exec.ts";
import { containerUsage, CpuRates, type CpuUsage, type MemoryUsage } from "./stats.ts";
import { concatBytes } from "../../base/bytes.ts";
import { decodeSpec, encodeSpec, type Spec, SPEC_TYPE_URL } from "../../oci/spec.ts";
import { now, type UnixNanos } from "../../base/clock.ts";
import type { BasicLogger } from "../../base/log.ts";
import type { Credentials } from "../remotes/auth.ts";
import { Resolver } from "../remotes/mod.ts";
import { parseReference } from "../../oci/reference.ts";
import type { Snapshotter } from "../snapshots/mod.ts";
import { pull, type PullDeps } from "../transfer/mod.ts";
import { containerdConfigView, CRI_NAMESPACE, type CriConfig, type CriPaths } from "./config.ts";
import { type CriImage, CriImages, IMAGE_LABEL_KEY, IMAGE_LABEL_VALUE, type ImageChanged } from "./images.ts";

/** The parts of an OCI spec's linux.resources the CRI reports. */
interface OciResources {
  readonly cpu?: { period?: number; quota?: number; shares?: number; cpus?: string; mems?: string };
  readonly memory?: { limit?: number; swap?: number };
  readonly hugepageLimits?: readonly { pageSize: string; limit: number }[];
  readonly unified?: Record<string, string>;
}

export { CRI_NAMESPACE };

/** runtime.v1.AuthConfig: what the kubelet passes from an image pull secret. */
export interface AuthConfig {
  readonly username: string;
  readonly password: string;
  /** base64 of `user:password`. */
  readonly auth: string;
  readonly serverAddress: string;
  readonly identityToken: string;
  readonly registryToken: string;
}

/** One of the runtime's conditions (runtime.v1.RuntimeCondition). */
export interface RuntimeCondition {
  readonly type: "RuntimeReady" | "NetworkReady";
  readonly status: boolean;
  readonly reason: string;
  readonly message: string;
}

/** What ContainerStats reports of one container. */
export interface ContainerUsage {
  readonly container: CriContainer;
  readonly cpu?: CpuUsage;
  readonly memory?: MemoryUsage;
  readonly writableLayer: ImageFsUsage;
}

/** What PodSandboxStats reports of one pod. */
export interface PodUsage {
  readonly sandbox: Sandbox;
  readonly timestamp: UnixNanos;
  readonly cpu?: CpuUsage;
  readonly memory?: MemoryUsage;
  readonly network?: { name: string; rxBytes: bigint; rxErrors: bigint; txBytes: bigint; txErrors: bigint };
  readonly processCount: number;
  readonly containers: ContainerUsage[];
}

/** An interface's counters as the process `pid` sees them (/proc/<pid>/net/dev, its netns). */
async function netDev(
  pid: number,
  name: string,
): Promise<
  { name: string; rxBytes: bigint; rxErrors: bigint; txBytes: bigint; txErrors: bigint } | undefined
> {
  for (const line of (await Deno.readTextFile(`/proc/${pid}/net/dev`)).split("\n")) {
    const m = /^\s*([^:]+):\s*(.*)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const f = m[2]!.trim().split(/\s+/).map((x) => BigInt(x));
    return { name, rxBytes: f[0]!, rxErrors: f[2]!, txBytes: f[8]!, txErrors: f[10]! };
  }
  return undefined;
}

/** containerd's cap on each ExecSync stream. */
const EXEC_SYNC_LIMIT = 16 * 1024 * 1024;

/** Collects bytes up to a limit; what comes after is read and dropped, as containerd's cappedWriter. */
class CappedBuffer {
  readonly #chunks: Uint8Array[] = [];
  #left: number;

  constructor(limit: number) {
    this.#left = limit;
  }

  readonly writable = new WritableStream<Uint8Array>({
    write: (chunk) => {
      if (this.#left <= 0) return;
      const piece = chunk.subarray(0, this.#left);
      this.#chunks.push(piece.slice());
      this.#left -= piece.length;
    },
  });

  bytes(): Uint8Array {
    return concatBytes(this.#chunks);
  }
}

export interface ImageFsUsage {
  readonly timestamp: UnixNanos;
  readonly mountpoint: string;
  readonly usedBytes: bigint;
  readonly inodesUsed: bigint;
}

export interface CriServiceDeps extends PullDeps {
  readonly snapshotters: ReadonlyMap<string, Snapshotter>;
  readonly containers: ContainerStore;
  readonly runtime: TaskManager;
  readonly network: PodNetwork;
  /** Persistent and volatile folders of the plugin. */
  readonly rootDir: string;
  readonly stateDir: string;
  readonly onContainer?: (kind: "create" | "delete", c: Container) => void;
  /** `<daemon root>/io.containerd.snapshotter.v1.<name>`: ImageFsInfo's mountpoint, as containerd reports it. */
  readonly snapshotterRoot: (name: string) => string;
  /** Told of image records made, changed and removed, for the image events. */
  readonly onImageChange?: ImageChanged;
  /** Whether pods can get a network: undefined when ready, else why not. */
  readonly networkNotReady: () => Promise<string | undefined>;
  /** The verbose Status entries about the network (cniconfig, lastCNILoadStatus). */
  readonly networkInfo?: () => Promise<Record<string, string>>;
  /** Where the plugin and its daemon live, for the verbose Status's config. */
  readonly paths?: CriPaths;
  readonly log: BasicLogger;
}

export class CriService {
  readonly config: CriConfig;
  readonly images: CriImages;
  readonly sandboxes: Sandboxes;
  readonly containers: Containers;
  readonly #deps: CriServiceDeps;
  #podCidr = "";

  constructor(config: CriConfig, deps: CriServiceDeps) {
    this.config = config;
    this.#deps = deps;
    this.images = new CriImages(CRI_NAMESPACE, { ...deps, onChange: deps.onImageChange });
    this.sandboxes = new Sandboxes({
      ns: CRI_NAMESPACE,
      config,
      containers: deps.containers,
      runtime: deps.runtime,
      snapshotters: deps.snapshotters,
      network: deps.network,
      ensureImage: (ref) => this.ensureImage(ref),
      rootDir: deps.rootDir,
      stateDir: deps.stateDir,
      onContainer: deps.onContainer,
      log: deps.log,
    });
    this.containers = new Containers({
      ns: CRI_NAMESPACE,
      config,
      containers: deps.containers,
      runtime: deps.runtime,
      snapshotters: deps.snapshotters,
      leases: deps.leases,
      sandbox: (id) => this.sandboxes.get(id),
      sandboxFiles: (id) => this.sandboxes.filesOf(id),
      localImage: (ref) => this.localImage(ref),
      rootDir: deps.rootDir,
      stateDir: deps.stateDir,
      onContainer: deps.onContainer,
      log: deps.log,
    });
  }

  /**
   * Pulls and unpacks `image` into the configured snapshotter; returns the image ID (its config
   * digest), as containerd's PullImage does.
   */
  async pullImage(image: string, options: { auth?: AuthConfig; signal?: AbortSignal } = {}): Promise<string> {
    let ref;
    try {
      ref = parseReference(image);
    } catch (err) {
      throw unknownError(`failed to parse image reference "${image}": ${(err as Error).message}`);
    }
    if (!this.#deps.snapshotters.has(this.config.snapshotter)) {
      throw failedPrecondition(
        `Cannot pull "${image}": snapshotter ${this.config.snapshotter} is not loaded`,
      );
    }
    using resolver = new Resolver({
      configPath: this.config.registry.configPath || undefined,
      mirrors: this.config.registry.configPath ? undefined : this.config.registry.mirrors,
      credentials: options.auth ? (host) => credentialsFor(options.auth!, host) : undefined,
    });
    const onChange = this.#deps.onImageChange;
    const deps = {
      ...this.#deps,
      onImage: onChange &&
        ((
          _ns: string,
          kind: "create" | "update",
          img: { name: string; labels: Readonly<Record<string, string>> },
        ) => onChange(kind, { name: img.name, labels: { ...img.labels } })),
    };
    const result = await pull(deps, CRI_NAMESPACE, ref.toString(), {
      resolver,
      maxConcurrentDownloads: this.config.maxConcurrentDownloads,
      labels: { [IMAGE_LABEL_KEY]: IMAGE_LABEL_VALUE },
      unpack: { snapshotter: this.config.snapshotter },
      signal: options.signal,
    }).catch((err) => {
      throw Object.assign(err, {
        message: `Failed to pull and unpack image "${ref}": ${(err as Error).message}`,
      });
    });
    return await this.images.recordPull(ref, result.image.target);
  }

  async runPodSandbox(config: PodSandboxConfig, runtimeHandler: string): Promise<string> {
    return await this.sandboxes.run(config, runtimeHandler);
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.sandboxes.stop(id, (sandboxId) => this.#stopContainersOf(sandboxId));
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.sandboxes.remove(id, {
      stopContainers: (sandboxId) => this.#stopContainersOf(sandboxId),
      removeContainers: async (sandboxId) => {
        for (const c of this.containers.list({ podSandboxId: sandboxId })) await this.containers.remove(c.id);
      },
    });
  }

  /** Every container of the pod stopped at once (SIGKILL), as containerd's StopPodSandbox does. */
  async #stopContainersOf(sandboxId: string): Promise<void> {
    for (const c of this.containers.list({ podSandboxId: sandboxId })) await this.containers.stop(c.id, 0);
  }

  /** A task exited (TaskExit event, by process id): the container or sandbox it is takes note. */
  async onTaskExit(id: string, exit: { exitStatus: number; exitedAt: UnixNanos }): Promise<void> {
    await this.containers.onExit(id, exit);
    await this.sandboxes.onExit(id);
  }

  async onTaskOom(containerId: string): Promise<void> {
    await this.containers.onOom(containerId);
  }

  /** After a daemon restart: every pod and container found again, with its real state. */
  async recover(): Promise<void> {
    this.sandboxes.recover();
    await this.sandboxes.refresh();
    await this.containers.recover();
  }

  /** ExecSync: the command's output (each stream capped at 16 MiB, as containerd) and exit code. */
  async execSync(
    containerId: string,
    cmd: readonly string[],
    timeoutSeconds: number,
  ): Promise<{ stdout: Uint8Array; stderr: Uint8Array; exitCode: number }> {
    const out = new CappedBuffer(EXEC_SYNC_LIMIT);
    const err = new CappedBuffer(EXEC_SYNC_LIMIT);
    const exitCode = await this.exec(containerId, {
      cmd,
      tty: false,
      stdout: out.writable,
      stderr: err.writable,
      timeoutMs: timeoutSeconds * 1000,
    });
    return { stdout: out.bytes(), stderr: err.bytes(), exitCode };
  }

  /** Runs a process in a running container (ExecSync, and the streaming Exec). */
  async exec(containerId: string, req: Omit<ExecRequest, "containerId">): Promise<number> {
    const c = this.containers.get(containerId);
    return await execInContainer({
      ns: CRI_NAMESPACE,
      containers: this.#deps.containers,
      task: () => this.containers.task(c.id),
      stateOf: (id) => this.containers.stateOf(id),
    }, { ...req, containerId: c.id });
  }

  /**
   * UpdateContainerResources: the resources applied to the spec as at creation (swap as large as the
   * memory limit), the record updated, and a running task's cgroups changed; on failure the old spec is
   * put back.
   */
  async updateContainerResources(containerId: string, resources: LinuxContainerResources | undefined) {
    const c = this.containers.get(containerId);
    const record = this.#deps.containers.get(CRI_NAMESPACE, c.id);
    const oldSpec = decodeSpec(record.spec!.value);
    const spec = await withUpdatedResources(oldSpec, resources, this.config);
    const save = (s: Spec) =>
      this.#deps.containers.update(CRI_NAMESPACE, {
        ...record,
        spec: { typeUrl: SPEC_TYPE_URL, value: encodeSpec(s) },
      }, { fieldpaths: ["spec"] });
    save(spec);
    if (c.state !== "running") return;
    try {
      await this.containers.task(c.id).update({
        typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
        value: new TextEncoder().encode(JSON.stringify(spec.linux?.resources ?? {})),
      });
    } catch (err) {
      if (isNotFound(err)) return;
      save(oldSpec);
      throw unknownError(`failed to update resources: ${(err as Error).message}`, { cause: err });
    }
  }

  /** ContainerStats: CPU and memory of a running container, and its writable layer's usage. */
  async containerStats(containerId: string): Promise<ContainerUsage> {
    const c = this.containers.get(containerId);
    const at = now();
    let usage: ReturnType<typeof containerUsage> = {};
    if (c.state === "running") {
      const metrics = await this.containers.task(c.id).stats().catch(() => undefined);
      usage = containerUsage(c.id, metrics, at, this.#cpuRates);
    }
    const sn = this.#deps.snapshotters.get(this.config.snapshotter);
    const layer = sn ? await sn.usage(CRI_NAMESPACE, c.id).catch(() => undefined) : undefined;
    return {
      container: c,
      ...usage,
      writableLayer: {
        timestamp: at,
        mountpoint: this.#deps.snapshotterRoot(this.config.snapshotter),
        usedBytes: BigInt(layer?.size ?? 0),
        inodesUsed: BigInt(layer?.inodes ?? 0),
      },
    };
  }

  /**
   * PodSandboxStats: CPU and memory of the pod (the pause container's cgroup here: Berth keeps no pod
   * cgroup of its own), its eth0 traffic, how many processes its containers run, and their stats.
   */
  async podSandboxStats(id: string): Promise<PodUsage> {
    const sb = this.sandboxes.get(id);
    if (sb.state !== "ready") {
      throw failedPrecondition(
        `Failed to get pod sandbox stats since sandbox container "${sb.id}" is not in ready state`,
      );
    }
    const at = now();
    const task = this.#deps.runtime.get(CRI_NAMESPACE, sb.id);
    const usage = containerUsage(
      `sandbox-${sb.id}`,
      await task.stats().catch(() => undefined),
      at,
      this.#cpuRates,
    );
    let network: PodUsage["network"];
    if (!sb.hostNetwork && sb.pid > 0) network = await netDev(sb.pid, "eth0").catch(() => undefined);
    let processCount = 0;
    const containers: ContainerUsage[] = [];
    for (const c of this.containers.list({ podSandboxId: sb.id })) {
      if (c.state === "running") {
        processCount += (await this.containers.task(c.id).pids().catch(() => [])).length;
      }
      containers.push(await this.containerStats(c.id));
    }
    return { sandbox: sb, timestamp: at, ...usage, network, processCount, containers };
  }

  readonly #cpuRates = new CpuRates();

  /** A local image for a container (never pulled: containerd's CreateContainer does not pull). */
  async localImage(
    ref: string,
  ): Promise<{ id: string; name: string; chainId: string; config: ImageConfig } | undefined> {
    const image = await this.images.find(ref);
    if (!image) return undefined;
    return {
      id: image.id,
      name: image.repoTags[0] ?? image.repoDigests[0] ?? image.references[0] ?? ref,
      chainId: image.chainId,
      config: (image.config.config ?? {}) as ImageConfig,
    };
  }

  /** RuntimeReady and NetworkReady, as containerd's Status reports them. */
  async status(): Promise<{ conditions: RuntimeCondition[] }> {
    const network = await this.#deps.networkNotReady();
    return {
      conditions: [
        { type: "RuntimeReady", status: true, reason: "", message: "" },
        {
          type: "NetworkReady",
          status: network === undefined,
          reason: network === undefined ? "" : "NetworkPluginNotReady",
          message: network === undefined ? "" : `Network plugin returns error: ${network}`,
        },
      ],
    };
  }

  /** The verbose Status's info, with containerd's keys: config, golang, cniconfig, lastCNILoadStatus. */
  async statusInfo(): Promise<Record<string, string>> {
    const paths = this.#deps.paths ?? {
      containerdRootDir: "",
      containerdEndpoint: "",
      rootDir: this.#deps.rootDir,
      stateDir: this.#deps.stateDir,
    };
    return {
      config: JSON.stringify(containerdConfigView(this.config, paths)),
      // containerd reports its Go version; Berth's runtime is Deno.
      golang: JSON.stringify(`deno${Deno.version.deno}`),
      ...await this.#deps.networkInfo?.(),
    };
  }

  /** containerd's verbose PodSandboxStatus info (its SandboxInfo). */
  sandboxInfo(sb: Sandbox): Record<string, unknown> {
    const runtime = this.config.runtimes[sb.metadata.runtimeHandler || this.config.defaultRuntimeName];
    return {
      pid: sb.pid,
      processStatus: sb.state === "ready" ? "running" : "stopped",
      netNamespaceClosed: sb.metadata.netnsPath === "",
      image: this.config.sandboxImage,
      snapshotKey: sb.id,
      snapshotter: this.config.snapshotter,
      runtimeHandler: sb.metadata.runtimeHandler,
      runtimeType: runtime?.runtimeType ?? "",
      runtimeOptions: runtime?.options ?? null,
      config: goJson(PodSandboxConfigSchema, sb.config),
      runtimeSpec: this.#specOf(sb.id) ?? null,
    };
  }

  /** containerd's verbose ContainerStatus info (its containerInfo). */
  containerInfo(c: CriContainer): Record<string, unknown> {
    const sb = this.sandboxes.list().find((s) => s.id === c.metadata.sandboxId);
    const runtime = this.config.runtimes[sb?.metadata.runtimeHandler || this.config.defaultRuntimeName];
    return {
      sandboxID: c.metadata.sandboxId,
      pid: c.status.pid,
      removing: c.status.removing,
      snapshotKey: c.id,
      snapshotter: this.config.snapshotter,
      runtimeType: runtime?.runtimeType ?? "",
      runtimeOptions: runtime?.options ?? null,
      config: goJson(ContainerConfigSchema, c.metadata.config),
      runtimeSpec: this.#specOf(c.id) ?? null,
    };
  }

  /** containerd's copyResourcesToStatus: the resources of the container's spec, as the CRI has them. */
  containerResources(id: string): ContainerResources | undefined {
    const spec = this.#specOf(id);
    if (!spec?.linux) return undefined;
    const r = spec.linux.resources as OciResources | undefined;
    const big = (v: number | undefined) => BigInt(v ?? 0);
    return create(ContainerResourcesSchema, {
      linux: {
        oomScoreAdj: big(spec.process?.oomScoreAdj),
        cpuPeriod: big(r?.cpu?.period),
        cpuQuota: big(r?.cpu?.quota),
        cpuShares: big(r?.cpu?.shares),
        cpusetCpus: r?.cpu?.cpus ?? "",
        cpusetMems: r?.cpu?.mems ?? "",
        memoryLimitInBytes: big(r?.memory?.limit),
        memorySwapLimitInBytes: big(r?.memory?.swap),
        hugepageLimits: (r?.hugepageLimits ?? []).map((h) => ({ pageSize: h.pageSize, limit: big(h.limit) })),
        unified: r?.unified ?? {},
      },
    });
  }

  #specOf(id: string): Spec | undefined {
    try {
      const value = this.#deps.containers.get(CRI_NAMESPACE, id).spec?.value;
      return value ? decodeSpec(value) : undefined;
    } catch {
      return undefined;
    }
  }

  /** The kubelet's pod CIDR; containerd uses it only with a CNI config template, which Berth lacks. */
  updateRuntimeConfig(podCidr: string): void {
    if (podCidr !== "" && podCidr !== this.#podCidr) {
      this.#deps.log.info("pod CIDR set (no CNI config template to fill)", { podCidr });
    }
    this.#podCidr = podCidr;
  }

  /** An image present locally (pulled when missing, as containerd's ensureImageExists), for a container. */
  async ensureImage(
    ref: string,
  ): Promise<{ name: string; id: string; chainId: string; config: ImageConfig }> {
    let image = await this.images.find(ref);
    if (!image) {
      await this.pullImage(ref);
      image = await this.images.find(ref);
      if (!image) throw notFound(`Image "${ref}" not found after pulling it`);
    }
    const name = image.repoTags[0] ?? image.repoDigests[0] ?? image.references[0] ?? ref;
    return {
      name,
      id: image.id,
      chainId: image.chainId,
      config: (image.config.config ?? {}) as ImageConfig,
    };
  }

  async imageStatus(image: string): Promise<CriImage | undefined> {
    return await this.images.find(image);
  }

  async removeImage(image: string): Promise<void> {
    await this.images.remove(image);
  }

  /** The image file system: the snapshotter's folder and what its snapshots in `k8s.io` use. */
  async imageFsInfo(): Promise<ImageFsUsage> {
    const sn = this.#deps.snapshotters.get(this.config.snapshotter);
    let usedBytes = 0n;
    let inodesUsed = 0n;
    if (sn) {
      const keys: string[] = [];
      await sn.walk(CRI_NAMESPACE, (info) => {
        keys.push(info.name);
      });
      for (const key of keys) {
        const u = await sn.usage(CRI_NAMESPACE, key).catch(() => undefined);
        if (!u) continue;
        usedBytes += BigInt(u.size);
        inodesUsed += BigInt(u.inodes);
      }
    }
    return {
      timestamp: now(),
      mountpoint: this.#deps.snapshotterRoot(this.config.snapshotter),
      usedBytes,
      inodesUsed,
    };
  }
}

/**
 * containerd's ParseAuth: the request's credentials apply only to the host its server address names
 * (or to any host when it names none); an identity token is sent as the password.
 */
export function credentialsFor(auth: AuthConfig, host: string): Credentials | undefined {
  if (auth.serverAddress !== "") {
    let serverHost: string;
    try {
      serverHost =
        new URL(auth.serverAddress.includes("://") ? auth.serverAddress : `https://${auth.serverAddress}`)
          .host;
    } catch {
      return undefined;
    }
    if (serverHost !== host) return undefined;
  }
  if (auth.username !== "") return { username: auth.username, password: auth.password };
  if (auth.identityToken !== "") return { username: "", password: auth.identityToken };
  if (auth.auth !== "") {
    const decoded = new TextDecoder().decode(Uint8Array.from(atob(auth.auth), (c) => c.charCodeAt(0)));
    const i = decoded.indexOf(":");
    if (i < 0) throw invalidArgument("Invalid auth config: the auth field is not base64 of user:password");
    return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
  }
  return undefined;
}
