/**
 * Pod sandboxes, as containerd 1.6's CRI runs them (pkg/cri/server/sandbox_*.go): a pause container from
 * `sandbox_image` holding the pod's namespaces, a network namespace set up through CNI, and the pod's
 * hostname, hosts, resolv.conf and /dev/shm. A sandbox is an ordinary container and task in `k8s.io`;
 * its metadata travels in the container's extensions, so a restarted daemon finds every pod again.
 */
import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { BerthError, errorKind, failedPrecondition, isNotFound, unknownError } from "../../base/errors.ts";
import { now, type UnixNanos } from "../../base/clock.ts";
import type { BasicLogger } from "../../base/log.ts";
import { encodeSpec, SPEC_TYPE_URL } from "../../oci/spec.ts";
import {
  NamespaceMode,
  type PodSandboxConfig,
  PodSandboxConfigSchema,
  type PortMapping,
  Protocol,
} from "../../gen/k8s/cri/runtime/v1/api_pb.ts";
import type { AnyValue, Container, ContainerStore } from "../containers/mod.ts";
import { mountAll, unmountAll } from "../mount/mod.ts";
import type { TaskManager } from "../runtime/mod.ts";
import type { Snapshotter } from "../snapshots/mod.ts";
import type { CriConfig } from "./config.ts";
import { runtimeOptions } from "./runtime_options.ts";
import { sandboxSpec } from "./sandbox_spec.ts";
import { generateId, IdIndex, NameIndex } from "./store.ts";
import type { ImageConfig } from "../../oci/opts.ts";

/** containerd's labels and extension key for CRI objects. */
export const KIND_LABEL = "io.cri-containerd.kind";
export const SANDBOX_METADATA_EXTENSION = "io.cri-containerd.sandbox.metadata";
const SANDBOX_METADATA_TYPE = "github.com/containerd/cri/pkg/store/sandbox/Metadata";
const SHM_SIZE = 64 * 1024 * 1024;

export type SandboxState = "ready" | "notready" | "unknown";

/** What a network for pods offers (the CNI runner in the daemon). */
export interface PodNetwork {
  /** Creates a network namespace held by a bind mount; returns its path. */
  createNetns(): Promise<string>;
  /** Unmounts and removes it; a path already gone is fine. */
  removeNetns(path: string): Promise<void>;
  setup(id: string, netnsPath: string, options: PodNetworkOptions): Promise<PodNetworkResult>;
  /** Idempotent: succeeds for what was never set up or is torn down already. */
  teardown(id: string, netnsPath: string, options: PodNetworkOptions): Promise<void>;
}

export interface PodNetworkOptions {
  /** CNI_ARGS: K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_INFRA_CONTAINER_ID, K8S_POD_UID, IgnoreUnknown. */
  readonly args: Readonly<Record<string, string>>;
  readonly portMappings: readonly {
    hostPort: number;
    containerPort: number;
    protocol: string;
    hostIP: string;
  }[];
  readonly dns?: { servers: string[]; searches: string[]; options: string[] };
}

export interface PodNetworkResult {
  readonly ip: string;
  readonly additionalIps: string[];
}

/** The sandbox's metadata, kept in its container record. */
export interface SandboxMetadata {
  readonly id: string;
  readonly name: string;
  readonly config: PodSandboxConfig;
  netnsPath: string;
  ip: string;
  additionalIps: string[];
  readonly runtimeHandler: string;
}

export class Sandbox {
  readonly metadata: SandboxMetadata;
  state: SandboxState;
  pid = 0;
  createdAt: UnixNanos;
  /** Resolves once the sandbox's task exited and was cleaned up. */
  #stopped = Promise.withResolvers<void>();

  constructor(metadata: SandboxMetadata, init: { state: SandboxState; createdAt: UnixNanos; pid?: number }) {
    this.metadata = metadata;
    this.state = init.state;
    this.createdAt = init.createdAt;
    this.pid = init.pid ?? 0;
  }

  get id(): string {
    return this.metadata.id;
  }

  get config(): PodSandboxConfig {
    return this.metadata.config;
  }

  get hostNetwork(): boolean {
    return this.config.linux?.securityContext?.namespaceOptions?.network === NamespaceMode.NODE;
  }

  markStopped(): void {
    this.state = "notready";
    this.pid = 0;
    this.#stopped.resolve();
  }

  get stopped(): Promise<void> {
    return this.#stopped.promise;
  }
}

/** `<name>_<namespace>_<uid>_<attempt>`, the sandbox name containerd reserves. */
export function sandboxName(config: PodSandboxConfig): string {
  const m = config.metadata!;
  return [m.name, m.namespace, m.uid, String(m.attempt)].join("_");
}

export function encodeSandboxMetadata(m: SandboxMetadata): AnyValue {
  const doc = {
    Version: "v1",
    Metadata: {
      ID: m.id,
      Name: m.name,
      Config: toJson(PodSandboxConfigSchema, m.config),
      NetNSPath: m.netnsPath,
      IP: m.ip,
      AdditionalIPs: m.additionalIps,
      RuntimeHandler: m.runtimeHandler,
    },
  };
  return { typeUrl: SANDBOX_METADATA_TYPE, value: new TextEncoder().encode(JSON.stringify(doc)) };
}

export function decodeSandboxMetadata(any: AnyValue): SandboxMetadata {
  const doc = JSON.parse(new TextDecoder().decode(any.value)) as {
    Metadata: {
      ID: string;
      Name: string;
      Config: JsonValue;
      NetNSPath?: string;
      IP?: string;
      AdditionalIPs?: string[];
      RuntimeHandler?: string;
    };
  };
  const d = doc.Metadata;
  return {
    id: d.ID,
    name: d.Name,
    config: fromJson(PodSandboxConfigSchema, d.Config),
    netnsPath: d.NetNSPath ?? "",
    ip: d.IP ?? "",
    additionalIps: d.AdditionalIPs ?? [],
    runtimeHandler: d.RuntimeHandler ?? "",
  };
}

export interface SandboxDeps {
  readonly ns: string;
  readonly config: CriConfig;
  readonly containers: ContainerStore;
  readonly runtime: TaskManager;
  readonly snapshotters: ReadonlyMap<string, Snapshotter>;
  readonly network: PodNetwork;
  /** The sandbox image, pulled when missing: its name, chain id and config. */
  readonly ensureImage: (ref: string) => Promise<{ name: string; chainId: string; config: ImageConfig }>;
  /** Persistent files of the plugin (`<root>/io.containerd.grpc.v1.cri`). */
  readonly rootDir: string;
  /** Volatile files of the plugin (`<state>/io.containerd.grpc.v1.cri`). */
  readonly stateDir: string;
  readonly onContainer?: (kind: "create" | "delete", c: Container) => void;
  readonly log: BasicLogger;
}

export class Sandboxes {
  readonly #deps: SandboxDeps;
  readonly #index = new IdIndex<Sandbox>("Sandbox");
  readonly #names = new NameIndex();
  /** Per-sandbox operations run one at a time. */
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(deps: SandboxDeps) {
    this.#deps = deps;
  }

  get(id: string): Sandbox {
    return this.#index.get(id);
  }

  list(): Sandbox[] {
    return this.#index.list();
  }

  rootOf(id: string): string {
    return `${this.#deps.rootDir}/sandboxes/${id}`;
  }

  stateOf(id: string): string {
    return `${this.#deps.stateDir}/sandboxes/${id}`;
  }

  /** Files a sandbox's containers bind in. */
  filesOf(id: string): { hostname: string; hosts: string; resolvConf: string; devShm: string } {
    return {
      hostname: `${this.rootOf(id)}/hostname`,
      hosts: `${this.rootOf(id)}/hosts`,
      resolvConf: `${this.rootOf(id)}/resolv.conf`,
      devShm: `${this.stateOf(id)}/shm`,
    };
  }

  async #locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(id) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(fn);
    this.#locks.set(id, next);
    try {
      return await next;
    } finally {
      if (this.#locks.get(id) === next) this.#locks.delete(id);
    }
  }

  /** RunPodSandbox: returns the new sandbox's id once its pause container runs. */
  async run(config: PodSandboxConfig, runtimeHandler: string): Promise<string> {
    if (!config.metadata) throw failedPrecondition("Sandbox config must include metadata");
    const d = this.#deps;
    const id = generateId();
    const name = sandboxName(config);
    try {
      this.#names.reserve(name, id);
    } catch (err) {
      // containerd wraps the registrar's error in a plain one: gRPC code Unknown.
      throw unknownError(`failed to reserve sandbox name "${name}": ${(err as Error).message}`);
    }
    const undo: (() => Promise<void>)[] = [];
    let networking: Promise<void> | undefined;
    try {
      const runtime = this.#runtimeFor(runtimeHandler);
      const image = await d.ensureImage(d.config.sandboxImage);
      const metadata: SandboxMetadata = {
        id,
        name,
        config,
        netnsPath: "",
        ip: "",
        additionalIps: [],
        runtimeHandler,
      };
      const sandbox = new Sandbox(metadata, { state: "unknown", createdAt: now() });
      await this.#setupFiles(sandbox, undo);
      if (!sandbox.hostNetwork) {
        metadata.netnsPath = await d.network.createNetns();
        undo.push(() => d.network.removeNetns(metadata.netnsPath));
        const options = this.#networkOptions(sandbox);
        // Registered first: CNI may allocate (an IP) and still fail, as containerd's comment says.
        undo.push(() => d.network.teardown(id, metadata.netnsPath, options));
        // The CNI plugins configure the netns while the pause container is created in it: its spec only
        // names the netns, and neither waits for the other (~20-25 ms of plugin processes each pod
        // start). The task starts once both are done, so the pause process never runs unnetworked.
        networking = d.network.setup(id, metadata.netnsPath, options).then((res) => {
          metadata.ip = res.ip;
          metadata.additionalIps = res.additionalIps;
        }, (err) => {
          throw networkSetupError(id, err);
        });
        networking.catch(() => {}); // awaited below, or before the undo on an earlier failure
      }
      const spec = await sandboxSpec({
        id,
        config,
        image: image.config,
        netnsPath: metadata.netnsPath,
        paths: { devShm: this.filesOf(id).devShm, resolvConf: this.filesOf(id).resolvConf },
        disableCgroup: d.config.disableCgroup,
        restrictOomScoreAdj: d.config.restrictOomScoreAdj,
        enableUnprivilegedPorts: d.config.enableUnprivilegedPorts,
        enableUnprivilegedIcmp: d.config.enableUnprivilegedIcmp,
        podAnnotations: runtime.podAnnotations,
        shimGroup: d.config.shimGroup === "pod" ? id : undefined,
      });
      const sn = this.#snapshotter();
      const mounts = await sn.prepare(d.ns, id, { parent: image.chainId });
      undo.push(() => sn.remove(d.ns, id).catch(() => {}));
      const container = d.containers.create(d.ns, {
        id,
        labels: { ...config.labels, ...image.config.Labels, [KIND_LABEL]: "sandbox" },
        image: image.name,
        runtime: { name: runtime.runtimeType, options: runtimeOptions(runtime) },
        spec: { typeUrl: SPEC_TYPE_URL, value: encodeSpec(spec) },
        snapshotter: d.config.snapshotter,
        snapshotKey: id,
        extensions: { [SANDBOX_METADATA_EXTENSION]: encodeSandboxMetadata(metadata) },
        sandbox: "",
      });
      d.onContainer?.("create", container);
      undo.push(() => {
        d.containers.delete(d.ns, id);
        d.onContainer?.("delete", container);
        return Promise.resolve();
      });
      sandbox.createdAt = container.createdAt;
      const { task, pid } = await d.runtime.create(d.ns, id, {
        spec: container.spec!.value,
        rootfs: mounts,
        stdin: "",
        stdout: "",
        stderr: "",
        terminal: false,
        runtime: runtime.runtimeType,
        runtimeOptions: container.runtime.options,
      });
      undo.push(async () => {
        await task.kill(9).catch(() => {});
        await d.runtime.delete(d.ns, id).catch(() => {});
      });
      if (networking) {
        await networking;
        this.#persist(sandbox);
      }
      await task.start();
      sandbox.pid = pid;
      sandbox.state = "ready";
      this.#index.add(id, sandbox);
      return id;
    } catch (err) {
      // The network's teardown must not race its own setup.
      await networking?.catch(() => {});
      for (const u of undo.reverse()) {
        await u().catch((e) =>
          d.log.warn("cleanup after a failed RunPodSandbox failed", { id, error: String(e) })
        );
      }
      this.#names.releaseByKey(id);
      throw err;
    }
  }

  /** StopPodSandbox: its containers stopped (by the caller), the pause container killed, the network torn down. */
  async stop(id: string, stopContainers: (sandboxId: string) => Promise<void>): Promise<void> {
    const sandbox = this.get(id);
    await this.#locked(sandbox.id, async () => {
      await stopContainers(sandbox.id);
      this.#cleanupFiles(sandbox);
      if (sandbox.state === "ready" || sandbox.state === "unknown") await this.#stopPause(sandbox);
      if (sandbox.metadata.netnsPath !== "") {
        await this.#deps.network.teardown(
          sandbox.id,
          sandbox.metadata.netnsPath,
          this.#networkOptions(sandbox),
        );
        await this.#deps.network.removeNetns(sandbox.metadata.netnsPath);
        sandbox.metadata.netnsPath = "";
        this.#persist(sandbox);
      }
    });
  }

  /** RemovePodSandbox: stops it first when it still runs, removes its containers (by the caller) and itself. */
  async remove(
    id: string,
    hooks: {
      stopContainers: (sandboxId: string) => Promise<void>;
      removeContainers: (sandboxId: string) => Promise<void>;
    },
  ): Promise<void> {
    let sandbox: Sandbox;
    try {
      sandbox = this.get(id);
    } catch (err) {
      // containerd answers success for a sandbox that is already gone.
      if (isNotFound(err)) return;
      throw err;
    }
    if (sandbox.state !== "notready" || sandbox.metadata.netnsPath !== "") {
      await this.stop(sandbox.id, hooks.stopContainers);
    }
    await hooks.removeContainers(sandbox.id);
    await this.#locked(sandbox.id, async () => {
      const d = this.#deps;
      await d.runtime.delete(d.ns, sandbox.id).catch((err) => {
        if (!isNotFound(err)) throw err;
      });
      let container: Container | undefined;
      try {
        container = d.containers.get(d.ns, sandbox.id);
        d.containers.delete(d.ns, sandbox.id);
        d.onContainer?.("delete", container);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      await this.#snapshotter().remove(d.ns, sandbox.id).catch((err) => {
        if (!isNotFound(err)) throw err;
      });
      await Deno.remove(this.rootOf(sandbox.id), { recursive: true }).catch(() => {});
      await Deno.remove(this.stateOf(sandbox.id), { recursive: true }).catch(() => {});
      this.#names.releaseByKey(sandbox.id);
      this.#index.delete(sandbox.id);
    });
  }

  /** The pause container exited (a TaskExit event): its task is deleted and the sandbox is not ready. */
  async onExit(id: string): Promise<void> {
    if (!this.#index.has(id)) return;
    const sandbox = this.#index.get(id);
    await this.#deps.runtime.delete(this.#deps.ns, id).catch((err) => {
      if (!isNotFound(err)) {
        this.#deps.log.warn("cannot delete the task of an exited sandbox", { id, error: String(err) });
      }
    });
    sandbox.markStopped();
  }

  /** After a daemon restart: the sandboxes the container records describe, with their real state. */
  recover(): void {
    const d = this.#deps;
    for (const c of d.containers.list(d.ns, { filters: [`labels."${KIND_LABEL}"==sandbox`] })) {
      const ext = c.extensions[SANDBOX_METADATA_EXTENSION];
      if (!ext) continue;
      let metadata: SandboxMetadata;
      try {
        metadata = decodeSandboxMetadata(ext);
      } catch (err) {
        d.log.warn("cannot read sandbox metadata", { id: c.id, error: String(err) });
        continue;
      }
      // A sandbox with a task is settled by refresh(), which asks the task; one without is not ready.
      const state: SandboxState = d.runtime.has(d.ns, c.id) ? "unknown" : "notready";
      const sandbox = new Sandbox(metadata, { state, createdAt: c.createdAt });
      this.#names.reserve(metadata.name, metadata.id);
      this.#index.add(metadata.id, sandbox);
    }
  }

  /** Settles the state of recovered sandboxes from their tasks (a running pause is ready). */
  async refresh(): Promise<void> {
    const d = this.#deps;
    for (const sandbox of this.list()) {
      if (sandbox.state !== "unknown") continue;
      try {
        const st = await d.runtime.get(d.ns, sandbox.id).state("", { timeoutMs: 5000 });
        if (st.status === 2 /* RUNNING */ || st.status === 4 /* PAUSED */) {
          sandbox.state = "ready";
          sandbox.pid = st.pid;
        } else {
          await this.onExit(sandbox.id);
        }
      } catch (err) {
        d.log.warn("cannot read the state of a recovered sandbox", { id: sandbox.id, error: String(err) });
      }
    }
  }

  #runtimeFor(handler: string) {
    const name = handler || this.#deps.config.defaultRuntimeName;
    const r = this.#deps.config.runtimes[name];
    if (!r) throw unknownError(`failed to get sandbox runtime: no runtime for "${name}" is configured`);
    return r;
  }

  #snapshotter(): Snapshotter {
    const sn = this.#deps.snapshotters.get(this.#deps.config.snapshotter);
    if (!sn) throw failedPrecondition(`Snapshotter "${this.#deps.config.snapshotter}" is not loaded`);
    return sn;
  }

  #persist(sandbox: Sandbox): void {
    const d = this.#deps;
    try {
      const c = d.containers.get(d.ns, sandbox.id);
      d.containers.update(d.ns, {
        ...c,
        extensions: {
          ...c.extensions,
          [SANDBOX_METADATA_EXTENSION]: encodeSandboxMetadata(sandbox.metadata),
        },
      }, { fieldpaths: [`extensions.${SANDBOX_METADATA_EXTENSION}`] });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  #networkOptions(sandbox: Sandbox): PodNetworkOptions {
    const m = sandbox.config.metadata!;
    const dns = sandbox.config.dnsConfig;
    return {
      args: {
        K8S_POD_NAMESPACE: m.namespace,
        K8S_POD_NAME: m.name,
        K8S_POD_INFRA_CONTAINER_ID: sandbox.id,
        K8S_POD_UID: m.uid,
        IgnoreUnknown: "1",
      },
      portMappings: sandbox.config.portMappings.filter((p) => p.hostPort > 0).map(portMapping),
      dns: dns
        ? { servers: [...dns.servers], searches: [...dns.searches], options: [...dns.options] }
        : undefined,
    };
  }

  async #setupFiles(sandbox: Sandbox, undo: (() => Promise<void>)[]): Promise<void> {
    const files = this.filesOf(sandbox.id);
    await Deno.mkdir(this.rootOf(sandbox.id), { recursive: true, mode: 0o755 });
    undo.push(() => Deno.remove(this.rootOf(sandbox.id), { recursive: true }));
    await Deno.mkdir(this.stateOf(sandbox.id), { recursive: true, mode: 0o755 });
    undo.push(() => Deno.remove(this.stateOf(sandbox.id), { recursive: true }));
    const hostname = sandbox.config.hostname || Deno.hostname();
    await Deno.writeTextFile(files.hostname, `${hostname}\n`, { mode: 0o644 });
    await Deno.copyFile("/etc/hosts", files.hosts);
    await Deno.chmod(files.hosts, 0o644);
    const dns = sandbox.config.dnsConfig;
    const resolv = dns ? resolvConf(dns.servers, dns.searches, dns.options) : "";
    if (resolv === "") await Deno.copyFile("/etc/resolv.conf", files.resolvConf);
    else await Deno.writeTextFile(files.resolvConf, resolv);
    await Deno.chmod(files.resolvConf, 0o644);
    const hostIpc = sandbox.config.linux?.securityContext?.namespaceOptions?.ipc === NamespaceMode.NODE;
    if (!hostIpc) {
      await Deno.mkdir(files.devShm, { recursive: true, mode: 0o700 });
      mountAll([{
        type: "tmpfs",
        source: "shm",
        options: ["noexec", "nosuid", "nodev", "mode=1777", `size=${SHM_SIZE}`],
      }], files.devShm);
      undo.push(() => Promise.resolve(unmountAll(files.devShm)));
    }
  }

  #cleanupFiles(sandbox: Sandbox): void {
    try {
      unmountAll(this.filesOf(sandbox.id).devShm);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }

  async #stopPause(sandbox: Sandbox): Promise<void> {
    const d = this.#deps;
    let task;
    try {
      task = d.runtime.get(d.ns, sandbox.id);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      sandbox.markStopped();
      return;
    }
    await task.kill(9).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
    // The exit event deletes the task; wait for it, but not forever.
    const exited = await Promise.race([
      sandbox.stopped.then(() => true),
      task.wait().then(() => true, () => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 10_000)),
    ]);
    if (!exited) throw failedPrecondition(`Sandbox "${sandbox.id}" did not stop within 10 s of SIGKILL`);
    await this.onExit(sandbox.id);
  }
}

/**
 * containerd wraps a failed network setup (`failed to setup network for sandbox …: %w`) around go-cni's
 * plain errors, so the kubelet sees code Unknown whichever plugin failed; only a cancelled or timed-out
 * call keeps its own code.
 */
function networkSetupError(id: string, err: unknown): BerthError {
  const kind = errorKind(err);
  return new BerthError(
    kind === "canceled" || kind === "deadline_exceeded" ? kind : "unknown",
    `failed to setup network for sandbox "${id}": ${(err as Error).message}`,
    { cause: err },
  );
}

function portMapping(p: PortMapping) {
  return {
    hostPort: p.hostPort,
    containerPort: p.containerPort,
    protocol: p.protocol === Protocol.UDP ? "udp" : p.protocol === Protocol.SCTP ? "sctp" : "tcp",
    hostIP: p.hostIp,
  };
}

/** containerd's parseDNSOptions: resolv.conf from the pod's DNS config, "" when it sets nothing. */
export function resolvConf(
  servers: readonly string[],
  searches: readonly string[],
  options: readonly string[],
): string {
  let out = "";
  if (searches.length > 0) out += `search ${searches.join(" ")}\n`;
  if (servers.length > 0) out += `nameserver ${servers.join("\nnameserver ")}\n`;
  if (options.length > 0) out += `options ${options.join(" ")}\n`;
  return out;
}
