/**
 * runtime.v1.RuntimeService and runtime.v1.ImageService (Kubernetes' CRI) on the daemon's socket, as
 * containerd's io.containerd.grpc.v1.cri serves them: handlers translate messages and call the core's
 * CriService (src/core/cri). Requests carry no containerd namespace: everything is in `k8s.io`.
 * The plugin (src/services/cri_plugin.ts) loads this module on the first CRI call.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  failedPrecondition,
  invalidArgument,
  notFound,
  notImplemented,
  unknownError,
} from "../base/errors.ts";
import { StreamingServer } from "../core/cri/streaming/mod.ts";
import { criStreamingRuntime } from "../core/cri/streaming_runtime.ts";
import { ImageCreateSchema, ImageDeleteSchema, ImageUpdateSchema } from "../gen/events/image_pb.ts";
import type { ContainerUsage, PodUsage } from "../core/cri/service.ts";
import type { CpuUsage, MemoryUsage } from "../core/cri/stats.ts";
import { CRI_NAMESPACE, type CriConfig, type CriImage, CriService } from "../core/cri/mod.ts";
import type { TransferDeps } from "../plugins/transfer.ts";
import {
  ContainerSchema as ContainerPbSchema,
  ContainerState as ContainerStatePb,
  type ContainerStats,
  ContainerStatsSchema,
  type ContainerStatus,
  ContainerStatusSchema,
  type Image,
  ImageSchema,
  ImageService,
  ImageSpecSchema,
  PodSandboxSchema,
  PodSandboxState,
  type PodSandboxStats,
  PodSandboxStatsSchema,
  type PodSandboxStatus,
  PodSandboxStatusSchema,
  RuntimeService,
} from "../gen/k8s/cri/runtime/v1/api_pb.ts";
import type { Sandbox, SandboxState } from "../core/cri/sandboxes.ts";
import type { ContainerState, CriContainer } from "../core/cri/containers.ts";
import { cniPodNetwork } from "../core/cri/network.ts";
import { CniManager } from "../core/cni/mod.ts";
import type { Container, ContainerStore } from "../core/containers/mod.ts";
import type { TaskManager } from "../core/runtime/mod.ts";
import type { EventBus } from "../core/events/mod.ts";
import { ContainerCreateSchema, ContainerDeleteSchema } from "../gen/events/container_pb.ts";
import { TaskExitSchema, TaskOOMSchema } from "../gen/events/task_pb.ts";
import { now } from "../base/clock.ts";
import { fromBinary } from "@bufbuild/protobuf";
import { parseFilters } from "../core/filters/mod.ts";
import {
  containerStorePluginId,
  containerStorePluginType,
  eventsPluginType,
  runtimePluginId,
  runtimePluginType,
  snapshotterPluginType,
  transferPluginType,
} from "../plugins/ids.ts";
import type { GrpcService, InitContext } from "../plugins/registry.ts";
import { version } from "../version.ts";

export function createCriServices(cri: CriService, streaming: StreamingServer): GrpcService {
  return {
    register(router) {
      router.service(ImageService, imageHandlers(cri));
      router.service(RuntimeService, runtimeHandlers(cri, streaming));
    },
  };
}

/** The CRI's services, running, and how to stop what serves them beside the API socket. */
export interface StartedCri {
  readonly service: GrpcService;
  close(): Promise<void>;
}

/**
 * The CRI plugin's work (src/services/cri_plugin.ts registers it): the core's CriService over the
 * transfer, container and runtime plugins, CNI, the streaming server, and recovery of what k8s.io holds.
 */
export async function startCri(ic: InitContext, config: CriConfig): Promise<StartedCri> {
  const transfer = ic.get<TransferDeps>(transferPluginType, "local");
  const bus = ic.get<EventBus>(eventsPluginType);
  const cni = new CniManager({
    cacheDir: `${ic.state}/cni-results`,
    confDir: config.cni.confDir,
    binDirs: config.cni.binDirs,
    maxConfNum: config.cni.maxConfNum,
    logger: ic.log,
  });
  // containerd keeps pod network namespaces in /var/run/netns, or under its state folder when asked.
  const network = cniPodNetwork(
    cni,
    config.netnsMountsUnderStateDir ? `${ic.state}/netns` : "/var/run/netns",
  );
  const cri = new CriService(config, {
    ...transfer,
    containers: ic.get<ContainerStore>(containerStorePluginType, containerStorePluginId),
    runtime: ic.get<TaskManager>(runtimePluginType, runtimePluginId),
    network,
    rootDir: ic.root,
    stateDir: ic.state,
    onContainer: (kind, c: Container) => {
      if (kind === "create") {
        ic.events.publish(CRI_NAMESPACE, "/containers/create", ContainerCreateSchema, {
          id: c.id,
          image: c.image,
          runtime: { name: c.runtime.name },
        });
      } else ic.events.publish(CRI_NAMESPACE, "/containers/delete", ContainerDeleteSchema, { id: c.id });
    },
    snapshotterRoot: (name) => `${ic.daemonRoot}/${snapshotterPluginType}.${name}`,
    networkNotReady: () => network.notReady(),
    networkInfo: () => network.info(),
    paths: {
      containerdRootDir: ic.daemonRoot,
      containerdEndpoint: ic.address,
      rootDir: ic.root,
      stateDir: ic.state,
    },
    onImageChange: (kind, img) => {
      if (kind === "delete") {
        ic.events.publish(CRI_NAMESPACE, "/images/delete", ImageDeleteSchema, { name: img.name });
      } else if (kind === "create") {
        ic.events.publish(CRI_NAMESPACE, "/images/create", ImageCreateSchema, img);
      } else ic.events.publish(CRI_NAMESPACE, "/images/update", ImageUpdateSchema, img);
    },
    log: ic.log,
  });
  const streaming = new StreamingServer({
    runtime: criStreamingRuntime(cri),
    address: config.streamServerAddress || "127.0.0.1",
    port: Number(config.streamServerPort),
    streamIdleTimeoutMs: config.streamIdleTimeoutMs || undefined,
    logger: ic.log,
  });
  streaming.start();
  const stop = new AbortController();
  watchTaskExits(bus, cri, ic.log, stop.signal);
  // As containerd: pods and containers are recovered before the CRI serves, so the kubelet's first
  // calls after a restart see them.
  await cri.recover().catch((err) => ic.log.warn("CRI recovery failed", { error: String(err) }));
  return {
    service: createCriServices(cri, streaming),
    close: () => {
      stop.abort();
      return streaming.close();
    },
  };
}

/** containerd's event monitor: task exits in k8s.io reach the pod or container they belong to. */
function watchTaskExits(
  bus: EventBus,
  cri: CriService,
  log: { warn(m: string, f?: Record<string, unknown>): void },
  signal: AbortSignal,
) {
  const filter = parseFilters([
    `namespace==${CRI_NAMESPACE},topic=="/tasks/exit"`,
    `namespace==${CRI_NAMESPACE},topic=="/tasks/oom"`,
  ]);
  (async () => {
    for await (const env of bus.subscribe({ filter, signal })) {
      try {
        if (env.topic === "/tasks/oom") {
          await cri.onTaskOom(fromBinary(TaskOOMSchema, env.event.value).containerId);
          continue;
        }
        const exit = fromBinary(TaskExitSchema, env.event.value);
        const at = exit.exitedAt;
        // The id, not the container id: an exec's exit is not the container's.
        await cri.onTaskExit(exit.id, {
          exitStatus: exit.exitStatus,
          exitedAt: at ? at.seconds * 1_000_000_000n + BigInt(at.nanos) : now(),
        });
      } catch (err) {
        log.warn("cannot handle a task exit", { error: String(err) });
      }
    }
  })();
}

/** containerd's Exec and Attach: the container must be running for a URL to be handed out. */
function runningContainer(cri: CriService, id: string): CriContainer {
  let c: CriContainer;
  try {
    c = cri.containers.get(id);
  } catch (err) {
    throw notFound(`failed to find container "${id}" in store: ${(err as Error).message}`);
  }
  if (c.state !== "running") {
    throw unknownError(`container is in ${ContainerStatePb[CONTAINER_STATES[c.state]]} state`);
  }
  return c;
}

function toImagePb(i: CriImage): Image {
  return create(ImageSchema, {
    id: i.id,
    repoTags: i.repoTags,
    repoDigests: i.repoDigests,
    size: BigInt(i.size),
    uid: i.uid !== undefined ? { value: i.uid } : undefined,
    username: i.username,
  });
}

function imageHandlers(cri: CriService): Partial<ServiceImpl<typeof ImageService>> {
  return {
    async listImages() {
      return { images: (await cri.images.list()).map(toImagePb) };
    },
    async imageStatus(req) {
      const image = await cri.imageStatus(req.image?.image ?? "");
      if (!image) return {};
      const info: Record<string, string> = req.verbose
        ? { info: JSON.stringify({ chainID: image.chainId, imageSpec: image.config }) }
        : {};
      return { image: toImagePb(image), info };
    },
    async pullImage(req, ctx) {
      const auth = req.auth;
      const imageRef = await cri.pullImage(req.image?.image ?? "", {
        auth: auth && {
          username: auth.username,
          password: auth.password,
          auth: auth.auth,
          serverAddress: auth.serverAddress,
          identityToken: auth.identityToken,
          registryToken: auth.registryToken,
        },
        signal: ctx.signal,
      });
      return { imageRef };
    },
    async removeImage(req) {
      await cri.removeImage(req.image?.image ?? "");
      return {};
    },
    async imageFsInfo() {
      const u = await cri.imageFsInfo();
      return {
        imageFilesystems: [{
          timestamp: u.timestamp,
          fsId: { mountpoint: u.mountpoint },
          usedBytes: { value: u.usedBytes },
          inodesUsed: { value: u.inodesUsed },
        }],
      };
    },
  };
}

function sandboxStatePb(state: SandboxState): PodSandboxState {
  return state === "ready" ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY;
}

function sandboxStatusPb(sb: Sandbox): PodSandboxStatus {
  const c = sb.config;
  const ns = c.linux?.securityContext?.namespaceOptions;
  // containerd's getIPs: none for host networking, nor once the pod's namespace is closed (stopped).
  const network = sb.hostNetwork || sb.metadata.netnsPath === "" ? { ip: "", additionalIps: [] } : {
    ip: sb.metadata.ip,
    additionalIps: sb.metadata.additionalIps.map((ip) => ({ ip })),
  };
  return create(PodSandboxStatusSchema, {
    id: sb.id,
    metadata: c.metadata,
    state: sandboxStatePb(sb.state),
    createdAt: sb.createdAt,
    network,
    linux: { namespaces: { options: { network: ns?.network ?? 0, pid: ns?.pid ?? 0, ipc: ns?.ipc ?? 0 } } },
    labels: c.labels,
    annotations: c.annotations,
    runtimeHandler: sb.metadata.runtimeHandler,
  });
}

const CONTAINER_STATES: Record<ContainerState, ContainerStatePb> = {
  created: ContainerStatePb.CONTAINER_CREATED,
  running: ContainerStatePb.CONTAINER_RUNNING,
  exited: ContainerStatePb.CONTAINER_EXITED,
  unknown: ContainerStatePb.CONTAINER_UNKNOWN,
};

function stateOfPb(s: ContainerStatePb): ContainerState {
  return (Object.entries(CONTAINER_STATES).find(([, v]) => v === s)?.[0] ?? "unknown") as ContainerState;
}

async function containerStatusPb(cri: CriService, c: CriContainer): Promise<ContainerStatus> {
  const cfg = c.metadata.config;
  let image = cfg.image;
  let imageRef = c.metadata.imageRef;
  const found = await cri.images.find(c.metadata.imageRef).catch(() => undefined);
  if (found?.repoTags[0]) image = create(ImageSpecSchema, { image: found.repoTags[0] });
  if (found?.repoDigests[0]) imageRef = found.repoDigests[0];
  return create(ContainerStatusSchema, {
    id: c.id,
    metadata: cfg.metadata,
    state: CONTAINER_STATES[c.state],
    createdAt: c.status.createdAt,
    startedAt: c.status.startedAt,
    finishedAt: c.status.finishedAt,
    exitCode: c.status.exitCode,
    image,
    imageRef,
    reason: cri.containers.reasonOf(c),
    message: c.status.message,
    labels: cfg.labels,
    annotations: cfg.annotations,
    mounts: cfg.mounts,
    logPath: c.metadata.logPath,
    resources: cri.containerResources(c.id),
  });
}

function cpuPb(c: CpuUsage) {
  return {
    timestamp: c.timestamp,
    usageCoreNanoSeconds: { value: c.usageCoreNanoSeconds },
    usageNanoCores: { value: c.usageNanoCores },
  };
}

function memoryPb(m: MemoryUsage) {
  return {
    timestamp: m.timestamp,
    workingSetBytes: { value: m.workingSetBytes },
    availableBytes: { value: m.availableBytes },
    usageBytes: { value: m.usageBytes },
    rssBytes: { value: m.rssBytes },
    pageFaults: { value: m.pageFaults },
    majorPageFaults: { value: m.majorPageFaults },
  };
}

function containerStatsPb(u: ContainerUsage): ContainerStats {
  const m = u.container.metadata;
  return create(ContainerStatsSchema, {
    attributes: {
      id: m.id,
      metadata: m.config.metadata,
      labels: m.config.labels,
      annotations: m.config.annotations,
    },
    cpu: u.cpu && cpuPb(u.cpu),
    memory: u.memory && memoryPb(u.memory),
    writableLayer: {
      timestamp: u.writableLayer.timestamp,
      fsId: { mountpoint: u.writableLayer.mountpoint },
      usedBytes: { value: u.writableLayer.usedBytes },
      inodesUsed: { value: u.writableLayer.inodesUsed },
    },
  });
}

function podStatsPb(u: PodUsage): PodSandboxStats {
  const c = u.sandbox.config;
  const n = u.network;
  return create(PodSandboxStatsSchema, {
    attributes: { id: u.sandbox.id, metadata: c.metadata, labels: c.labels, annotations: c.annotations },
    linux: {
      cpu: u.cpu && cpuPb(u.cpu),
      memory: u.memory && memoryPb(u.memory),
      network: n && {
        timestamp: u.timestamp,
        defaultInterface: {
          name: n.name,
          rxBytes: { value: n.rxBytes },
          rxErrors: { value: n.rxErrors },
          txBytes: { value: n.txBytes },
          txErrors: { value: n.txErrors },
        },
      },
      process: { timestamp: u.timestamp, processCount: { value: BigInt(u.processCount) } },
      containers: u.containers.map(containerStatsPb),
    },
  });
}

function runtimeHandlers(
  cri: CriService,
  streaming: StreamingServer,
): Partial<ServiceImpl<typeof RuntimeService>> {
  const sandboxes = cri.sandboxes;
  const containers = cri.containers;
  return {
    async createContainer(req) {
      if (!req.config) throw invalidArgument("Container config is required");
      return { containerId: await containers.create(req.podSandboxId, req.config) };
    },
    async startContainer(req) {
      await containers.start(req.containerId);
      return {};
    },
    async stopContainer(req) {
      await containers.stop(req.containerId, Number(req.timeout));
      return {};
    },
    async removeContainer(req) {
      await containers.remove(req.containerId);
      return {};
    },
    async containerStatus(req) {
      const c = containers.get(req.containerId);
      const info: Record<string, string> = req.verbose ? { info: JSON.stringify(cri.containerInfo(c)) } : {};
      return { status: await containerStatusPb(cri, c), info };
    },
    listContainers(req) {
      const f = req.filter;
      const list = containers.list({
        id: f?.id,
        podSandboxId: f?.podSandboxId,
        state: f?.state ? stateOfPb(f.state.state) : undefined,
        labelSelector: f?.labelSelector,
      });
      return {
        containers: list.map((c) =>
          create(ContainerPbSchema, {
            id: c.id,
            podSandboxId: c.metadata.sandboxId,
            metadata: c.metadata.config.metadata,
            image: c.metadata.config.image,
            imageRef: c.metadata.imageRef,
            state: CONTAINER_STATES[c.state],
            createdAt: c.status.createdAt,
            labels: c.metadata.config.labels,
            annotations: c.metadata.config.annotations,
          })
        ),
      };
    },
    async execSync(req) {
      const r = await cri.execSync(req.containerId, req.cmd, Number(req.timeout));
      return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode };
    },
    exec(req) {
      const c = runningContainer(cri, req.containerId);
      return { url: streaming.getExec({ ...req, containerId: c.id }) };
    },
    attach(req) {
      const c = runningContainer(cri, req.containerId);
      return { url: streaming.getAttach({ ...req, containerId: c.id }) };
    },
    portForward(req) {
      let sandbox;
      try {
        sandbox = cri.sandboxes.get(req.podSandboxId);
      } catch (err) {
        throw notFound(`failed to find sandbox "${req.podSandboxId}": ${(err as Error).message}`);
      }
      if (sandbox.state !== "ready") throw failedPrecondition("sandbox container is not running");
      return { url: streaming.getPortForward({ podSandboxId: sandbox.id, port: req.port }) };
    },
    async updateContainerResources(req) {
      await cri.updateContainerResources(req.containerId, req.linux);
      return {};
    },
    async containerStats(req) {
      return { stats: containerStatsPb(await cri.containerStats(req.containerId)) };
    },
    async listContainerStats(req) {
      const f = req.filter;
      const list = cri.containers.list({
        id: f?.id,
        podSandboxId: f?.podSandboxId,
        labelSelector: f?.labelSelector,
      });
      const stats = [];
      for (const c of list) stats.push(containerStatsPb(await cri.containerStats(c.id)));
      return { stats };
    },
    async podSandboxStats(req) {
      return { stats: podStatsPb(await cri.podSandboxStats(req.podSandboxId)) };
    },
    async listPodSandboxStats(req) {
      const f = req.filter;
      const stats = [];
      for (const sb of cri.sandboxes.list()) {
        if (sb.state !== "ready") continue;
        if (f?.id && !sb.id.startsWith(f.id)) continue;
        if (!Object.entries(f?.labelSelector ?? {}).every(([k, v]) => sb.config.labels[k] === v)) continue;
        stats.push(podStatsPb(await cri.podSandboxStats(sb.id)));
      }
      return { stats };
    },
    async reopenContainerLog(req) {
      await containers.reopenLog(req.containerId);
      return {};
    },
    async runPodSandbox(req) {
      if (!req.config) throw invalidArgument("Sandbox config is required");
      return { podSandboxId: await cri.runPodSandbox(req.config, req.runtimeHandler) };
    },
    async stopPodSandbox(req) {
      await cri.stopPodSandbox(req.podSandboxId);
      return {};
    },
    async removePodSandbox(req) {
      await cri.removePodSandbox(req.podSandboxId);
      return {};
    },
    podSandboxStatus(req) {
      const sb = sandboxes.get(req.podSandboxId);
      const info: Record<string, string> = req.verbose ? { info: JSON.stringify(cri.sandboxInfo(sb)) } : {};
      return { status: sandboxStatusPb(sb), info };
    },
    listPodSandbox(req) {
      const f = req.filter;
      let id = f?.id ?? "";
      if (id !== "") {
        try {
          id = sandboxes.get(id).id;
        } catch {
          return { items: [] };
        }
      }
      const items = sandboxes.list().filter((sb) =>
        (id === "" || sb.id === id) &&
        (f?.state === undefined || sandboxStatePb(sb.state) === f.state.state) &&
        Object.entries(f?.labelSelector ?? {}).every(([k, v]) => sb.config.labels[k] === v)
      ).map((sb) =>
        create(PodSandboxSchema, {
          id: sb.id,
          metadata: sb.config.metadata,
          state: sandboxStatePb(sb.state),
          createdAt: sb.createdAt,
          labels: sb.config.labels,
          annotations: sb.config.annotations,
          runtimeHandler: sb.metadata.runtimeHandler,
        })
      );
      return { items };
    },
    version() {
      return { version: "0.1.0", runtimeName: "berth", runtimeVersion: version, runtimeApiVersion: "v1" };
    },
    async status(req) {
      const s = await cri.status();
      return {
        status: {
          conditions: s.conditions.map((c) => ({
            type: c.type,
            status: c.status,
            reason: c.reason,
            message: c.message,
          })),
        },
        info: req.verbose ? await cri.statusInfo() : {},
      };
    },
    updateRuntimeConfig(req) {
      cri.updateRuntimeConfig(req.runtimeConfig?.networkConfig?.podCidr ?? "");
      return {};
    },
    listMetricDescriptors() {
      throw notImplemented("ListMetricDescriptors is not implemented, as in containerd 1.6");
    },
    listPodSandboxMetrics() {
      throw notImplemented("ListPodSandboxMetrics is not implemented, as in containerd 1.6");
    },
  };
}
