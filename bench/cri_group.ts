/**
 * CRI figures: a pod started the way the kubelet starts one (RunPodSandbox → CreateContainer →
 * StartContainer over gRPC on the daemon's socket), its teardown (StopPodSandbox + RemovePodSandbox),
 * and the memory of daemon plus shims idle with the CRI on and with pods of two running containers.
 * Both daemons read the same `[plugins."io.containerd.grpc.v1.cri"]` section: a sandbox image and a
 * busybox image in a local registry, a bridge network of the benchmark's own, runc's state in a temp dir.
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ContainerState,
  NamespaceMode,
  type PodSandboxConfigSchema,
  PodSandboxState,
  type RuntimeCondition,
} from "../src/gen/k8s/cri/runtime/v1/api_pb.ts";
import { buildCriFixtureImages, buildFixtureImages, pushFixtures } from "../tests/fixtures/images.ts";
import {
  cleanupHost,
  type CriNetwork,
  criPluginToml,
  findLeftovers,
  type HostState,
  hostState,
  makeCriNetwork,
  type RunTraces,
} from "../tests/helpers/cri.ts";
import { startRegistry, type TestRegistry } from "../tests/helpers/registry.ts";
import { inLanes } from "./exec.ts";
import { type CriClients, criClients } from "./grpc_client.ts";
import { startReady } from "./ready.ts";
import type { FigureGroup, FigureSpec, SampleContext, SetupContext } from "./runner.ts";
import { daemonAndShimsMemory } from "./shims.ts";
import { median } from "./stats.ts";
import { NAMESPACE, type Target } from "./targets.ts";
import { sleep } from "./sleep.ts";

/** Containers in each pod of the memory figures. */
export const CONTAINERS_PER_POD = 2;
/** The goals for berth/containerd: pod start ≤ 0.7×; memory ≤ 1.0× at 10 pods, ≤ 0.6× at 30. */
export const START_GOAL = 0.7;
export const MEMORY_GOALS: Readonly<Record<number, number>> = { 10: 1.0, 30: 0.6 };
/** The CNI network's name and the /24s it may take: apart from the CRI suite's (77–84), so both can run. */
const NETWORK = { name: "berth-bench-cri", octets: [90, 91, 92, 93, 94, 95, 96, 97] };
/** The pods' parent cgroup: the benchmark's own, which every daemon stop (and bench/main.ts) removes. */
const CGROUP_PARENT = `/${NAMESPACE}`;
const CALL_TIMEOUT_MS = 60_000;
const LANES = 4;

type PodConfig = MessageInitShape<typeof PodSandboxConfigSchema>;

/** The figure specs for the pod counts of the memory figures. */
export function criFigures(podCounts: readonly number[]): FigureSpec[] {
  const pods = (n: number) => `${n} pod${n === 1 ? "" : "s"} × ${CONTAINERS_PER_POD} containers`;
  return [
    {
      id: "pod_start_cold_ms",
      label: "RunPodSandbox → StartContainer, 1 pod × 1 container, first on a fresh daemon",
      unit: "ms",
    },
    {
      id: "pod_start_ms",
      label: "RunPodSandbox → StartContainer, 1 pod × 1 container (median)",
      unit: "ms",
      goal: START_GOAL,
    },
    { id: "pod_teardown_ms", label: "StopPodSandbox + RemovePodSandbox (median)", unit: "ms" },
    { id: "idle_pss_mib", label: "daemon + shims PSS, CRI on, images pulled, no pod", unit: "MiB" },
    ...podCounts.map((n): FigureSpec => ({
      id: `pss_${n}_pods_mib`,
      label: `daemon + shims PSS, ${pods(n)} running`,
      unit: "MiB",
      ...(MEMORY_GOALS[n] !== undefined ? { goal: MEMORY_GOALS[n] } : {}),
    })),
  ];
}

/**
 * A pod as the kubelet describes one: metadata, a log folder, labels, its own cgroup under the parent,
 * a PID namespace per container (the kubelet's default).
 */
export function podConfig(
  name: string,
  options: { uid: string; logDirectory: string; cgroupParent: string },
): PodConfig {
  return {
    metadata: { name, uid: options.uid, namespace: "berth-bench", attempt: 0 },
    hostname: name,
    logDirectory: options.logDirectory,
    labels: { app: name, suite: "berth-bench" },
    linux: {
      cgroupParent: `${options.cgroupParent}/pod${options.uid}`,
      securityContext: { namespaceOptions: { pid: NamespaceMode.CONTAINER } },
    },
  };
}

/** The runtime conditions that are not true yet (RuntimeReady and NetworkReady must both be). */
export function unreadyConditions(
  conditions: readonly Pick<RuntimeCondition, "type" | "status">[],
): string[] {
  const wanted = ["RuntimeReady", "NetworkReady"];
  return wanted.filter((t) => !conditions.some((c) => c.type === t && c.status));
}

/** The network namespace path from a verbose PodSandboxStatus's `info` (what `crictl inspectp` shows). */
export function netnsOf(info: Readonly<Record<string, string>>): string | undefined {
  const raw = info.info;
  if (raw === undefined) return undefined;
  const parsed = JSON.parse(raw) as {
    runtimeSpec?: { linux?: { namespaces?: { type?: string; path?: string }[] } };
  };
  return parsed.runtimeSpec?.linux?.namespaces?.find((n) => n.type === "network")?.path || undefined;
}

/** p, its error prefixed with what was asked: a failed run then says which call failed. */
async function step<T>(what: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw new Error(`${what}: ${(err as Error).message}`, { cause: err });
  }
}

function notFound(err: unknown): boolean {
  return ConnectError.from(err).code === Code.NotFound;
}

interface Shared {
  readonly tmp: string;
  readonly registry: TestRegistry;
  readonly network: CriNetwork;
  readonly traces: RunTraces;
  readonly image: string;
  readonly pause: string;
}

/** Pods on one daemon: started, recorded for the leftover check, torn down. */
class Pods {
  readonly #cri: CriClients;
  readonly #shared: Shared;
  readonly #dir: string;
  readonly #signal: AbortSignal;
  #seq = 0;

  constructor(cri: CriClients, shared: Shared, options: { dir: string; signal: AbortSignal }) {
    this.#cri = cri;
    this.#shared = shared;
    this.#dir = options.dir;
    this.#signal = options.signal;
  }

  get #call() {
    return { signal: this.#signal, timeoutMs: CALL_TIMEOUT_MS };
  }

  /** Starts a pod of `containers` sleeping containers; ms from RunPodSandbox to the last StartContainer. */
  async start(containers: number): Promise<{ id: string; ms: number }> {
    const name = `pod${++this.#seq}`;
    const uid = crypto.randomUUID();
    // The kubelet makes the log folder before it asks for the pod.
    const logDirectory = `${this.#dir}/pods/berth-bench_${name}_${uid}`;
    await Deno.mkdir(logDirectory, { recursive: true });
    const config = podConfig(name, { uid, logDirectory, cgroupParent: CGROUP_PARENT });
    const rt = this.#cri.runtime;
    const t0 = performance.now();
    const { podSandboxId: id } = await step(
      `RunPodSandbox ${name}`,
      rt.runPodSandbox({ config }, this.#call),
    );
    try {
      for (let i = 1; i <= containers; i++) {
        const { containerId } = await step(
          `CreateContainer c${i} in ${name}`,
          rt.createContainer({
            podSandboxId: id,
            sandboxConfig: config,
            config: {
              metadata: { name: `c${i}`, attempt: 0 },
              image: { image: this.#shared.image },
              command: ["/bin/sleep", "3600"],
              logPath: `c${i}/0.log`,
              linux: {},
            },
          }, this.#call),
        );
        await step(`StartContainer c${i} in ${name}`, rt.startContainer({ containerId }, this.#call));
      }
      return { id, ms: performance.now() - t0 };
    } finally {
      await this.#record(id);
    }
  }

  /** ms of StopPodSandbox + RemovePodSandbox, as the kubelet ends a pod. */
  async teardown(id: string): Promise<number> {
    const t0 = performance.now();
    await step(`StopPodSandbox ${id}`, this.#cri.runtime.stopPodSandbox({ podSandboxId: id }, this.#call));
    await step(
      `RemovePodSandbox ${id}`,
      this.#cri.runtime.removePodSandbox({ podSandboxId: id }, this.#call),
    );
    return performance.now() - t0;
  }

  /** Ready pods and running containers, as the runtime lists them. */
  async count(): Promise<{ pods: number; containers: number }> {
    const rt = this.#cri.runtime;
    const pods = await rt.listPodSandbox(
      { filter: { state: { state: PodSandboxState.SANDBOX_READY } } },
      this.#call,
    );
    const ctrs = await rt.listContainers(
      { filter: { state: { state: ContainerState.CONTAINER_RUNNING } } },
      this.#call,
    );
    return { pods: pods.items.length, containers: ctrs.containers.length };
  }

  /** Tears down every pod the runtime lists; the errors of those it could not, as text. */
  async removeAll(): Promise<string[]> {
    const call = { timeoutMs: CALL_TIMEOUT_MS };
    const rt = this.#cri.runtime;
    const failures: string[] = [];
    let items: { id: string }[];
    try {
      items = (await rt.listPodSandbox({}, call)).items;
    } catch (err) {
      return [`ListPodSandbox: ${(err as Error).message}`];
    }
    await inLanes(
      items.map(({ id }) => async () => {
        try {
          await rt.stopPodSandbox({ podSandboxId: id }, call);
          await rt.removePodSandbox({ podSandboxId: id }, call);
        } catch (err) {
          if (!notFound(err)) failures.push(`pod ${id}: ${(err as Error).message}`);
        }
      }),
      LANES,
    );
    return failures;
  }

  /** What findLeftovers() and cleanupHost() look for: the sandbox's id and its network namespace. */
  async #record(id: string): Promise<void> {
    let netns: string | undefined;
    try {
      const st = await this.#cri.runtime.podSandboxStatus({ podSandboxId: id, verbose: true }, {
        timeoutMs: CALL_TIMEOUT_MS,
      });
      netns = netnsOf(st.info);
    } catch { /* the sandbox id alone still finds its iptables rules and CNI results */ }
    const lines = [`sandbox ${id}`, ...(netns ? [`netns ${netns}`] : [])];
    await Deno.writeTextFile(this.#shared.traces.recordPath, lines.join("\n") + "\n", { append: true });
  }
}

export function criGroup(options: { podCounts: readonly number[] }): FigureGroup {
  const podCounts = [...options.podCounts].sort((a, b) => a - b);
  if (podCounts.length === 0 || podCounts[0]! < 1) {
    throw new Error("CRI group pod counts must be at least one positive number");
  }
  let shared: Shared | undefined;
  let tmp: string | undefined;
  let registry: TestRegistry | undefined;
  let traces: RunTraces | undefined;
  let before: HostState | undefined;
  let seq = 0;

  const setup = async (ctx: SetupContext) => {
    before = await hostState();
    tmp = await Deno.makeTempDir({ prefix: "berth-bench-cri-" });
    registry = await startRegistry({ signal: ctx.signal });
    const network = await makeCriNetwork(tmp, NETWORK);
    traces = { dir: tmp, network, cgroupParent: CGROUP_PARENT, recordPath: `${tmp}/record` };
    const base = await pushFixtures(registry, await buildFixtureImages(`${tmp}/fixtures/base`), {
      names: ["single"],
      signal: ctx.signal,
    });
    const cri = await pushFixtures(registry, await buildCriFixtureImages(`${tmp}/fixtures/cri`), {
      names: ["pause"],
      signal: ctx.signal,
    });
    await Deno.remove(`${tmp}/fixtures`, { recursive: true });
    shared = {
      tmp,
      registry,
      network,
      traces,
      image: base.single.reference,
      pause: cri.pause.reference,
    };
  };

  const teardown = async () => {
    await registry?.stop();
    // The bridge, portmap's chains, the pods' parent cgroup, ip_forward; and what a failed run left.
    if (traces && before) await cleanupHost(traces, before).catch(() => {});
    if (tmp) await Deno.remove(tmp, { recursive: true }).catch(() => {});
    shared = undefined;
    registry = undefined;
    traces = undefined;
    before = undefined;
    tmp = undefined;
  };

  /**
   * A fresh daemon with the CRI configured, serving, both images pulled (not timed). Afterwards every
   * pod is torn down through the CRI, the host is checked for what the runtime should have removed,
   * and the daemon is stopped with all it started.
   */
  async function onFresh<T>(
    target: Target,
    signal: AbortSignal,
    fn: (pods: Pods, daemon: { pid: number; socket: string }) => Promise<T>,
  ): Promise<T> {
    const s = shared!;
    const dir = `${s.tmp}/session${++seq}`;
    const config = criPluginToml({
      sandboxImage: s.pause,
      registryHost: s.registry.host,
      network: s.network,
      runcRoot: `${dir}/runc`,
    });
    await Deno.mkdir(dir);
    const d = await startReady({ start: () => target.start({ config }) });
    const cri = criClients(d.socket);
    const pods = new Pods(cri, s, { dir, signal });
    /** Tears down every pod; what the runtime should have removed but did not, when `check`. */
    const finish = async (check: boolean): Promise<string[]> => {
      const failures = await pods.removeAll();
      const leftovers = check ? [...failures, ...await findLeftovers(s.traces)] : [];
      cri.close();
      await d.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return leftovers;
    };
    let result: T;
    try {
      await waitCriReady(cri, signal);
      for (const image of [s.pause, s.image]) {
        await cri.images.pullImage({ image: { image } }, { signal, timeoutMs: CALL_TIMEOUT_MS });
      }
      result = await fn(pods, d);
    } catch (err) {
      const tail = await d.logTail(5);
      // After a failure the error says enough: leftovers are cleaned up, not reported.
      await finish(false);
      throw new Error(`${(err as Error).message}\n${target.id} daemon log ends:\n${tail}`);
    }
    const leftovers = await finish(true);
    if (leftovers.length > 0) {
      throw new Error(`${target.id} left on the host after removing its pods:\n${leftovers.join("\n")}`);
    }
    return result;
  }

  const sample = async (target: Target, ctx: SampleContext): Promise<Record<string, number>> => {
    const { signal } = ctx;
    const warmPods = ctx.quick ? 3 : 5;
    const settleMs = ctx.quick ? 500 : 1_500;
    const out: Record<string, number> = {};
    // Two daemons, so the memory figures do not inherit the latency pods' garbage.
    await onFresh(target, signal, async (pods) => {
      const starts: number[] = [];
      const teardowns: number[] = [];
      for (let i = 0; i <= warmPods; i++) {
        const { id, ms } = await pods.start(1);
        starts.push(ms);
        teardowns.push(await pods.teardown(id));
      }
      out.pod_start_cold_ms = starts[0]!;
      out.pod_start_ms = median(starts.slice(1));
      out.pod_teardown_ms = median(teardowns);
    });
    await onFresh(target, signal, async (pods, d) => {
      await sleep(settleMs, signal);
      out.idle_pss_mib = (await daemonAndShimsMemory(d.pid, d.socket)).pssKiB / 1024;
      let running = 0;
      for (const n of podCounts) {
        await inLanes(Array.from({ length: n - running }, () => () => pods.start(CONTAINERS_PER_POD)), LANES);
        running = n;
        await sleep(settleMs, signal);
        const listed = await pods.count();
        if (listed.pods !== n || listed.containers !== n * CONTAINERS_PER_POD) {
          throw new Error(
            `Expected ${n} ready pods and ${n * CONTAINERS_PER_POD} running containers, the runtime lists ` +
              `${listed.pods} and ${listed.containers}`,
          );
        }
        out[`pss_${n}_pods_mib`] = (await daemonAndShimsMemory(d.pid, d.socket)).pssKiB / 1024;
      }
    });
    return out;
  };

  return {
    id: "cri",
    title: "CRI: a pod the kubelet's way, and memory with pods",
    defaultRuns: { full: 3, quick: 1 },
    setup,
    teardown,
    sample,
    figures: criFigures(podCounts),
    notes: [
      'Both daemons get the same `[plugins."io.containerd.grpc.v1.cri"]` section (tests/helpers/cri.ts): ' +
      "a pause-like sandbox image and the busybox fixture in a local registry (an `http://` mirror), a CNI " +
      "bridge network of the benchmark's own (bridge + host-local + portmap on a 10.231.N.0/24), runc's state " +
      "in a temp dir, `restrict_oom_score_adj = true`. Berth serves all pods from its namespace's shared shim " +
      "(its default `shim_group`); containerd starts one shim per pod.",
      "Each run starts two fresh daemons; on each, a Deno gRPC client (one HTTP/2 connection, as the kubelet " +
      "keeps one) waits for the CRI `Status` to report RuntimeReady and NetworkReady and pulls both images " +
      "with `PullImage` (not timed).",
      `Pod start: wall time from RunPodSandbox until StartContainer returns for a pod of one \`/bin/sleep\` ` +
      "container (a log folder and its own cgroup parent, as the kubelet gives one); each pod is then torn " +
      "down with StopPodSandbox + RemovePodSandbox, timed as the teardown figure. The first pod on the fresh " +
      "daemon is the cold figure (Berth starts its shim for it); the median is over the 5 that follow " +
      "(3 with --quick); teardown is the median over all 6.",
      `Memory: on the second daemon, PSS summed over the daemon and every shim of its socket (as the memory ` +
      `group counts it; pause and container processes not counted) after a settle pause (1.5 s), first ` +
      `with no pod, then with ${podCounts.join(", then ")} pods of ${CONTAINERS_PER_POD} \`/bin/sleep\` ` +
      `containers each (started ${LANES} pods at a time, checked with ListPodSandbox and ListContainers).`,
      "Clean-up: every pod torn down through the CRI, then the run fails if the runtime left a network " +
      "namespace, bridge port, address lease, iptables rule, CNI result or container cgroup behind; the " +
      "daemon is stopped with all its shims; at the end the bridge, portmap's chains and the pods' parent " +
      "cgroup are removed.",
    ],
  };
}

/** Polls the CRI `Status` until the runtime and its network are ready (containerd loads CNI config async). */
async function waitCriReady(cri: CriClients, signal: AbortSignal, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = "no answer yet";
  while (performance.now() < deadline) {
    try {
      const st = await cri.runtime.status({}, { signal, timeoutMs: 5_000 });
      const unready = unreadyConditions(st.status?.conditions ?? []);
      if (unready.length === 0) return;
      last = `not ready: ${unready.join(", ")}`;
    } catch (err) {
      signal.throwIfAborted();
      last = (err as Error).message;
    }
    await sleep(50, signal);
  }
  throw new Error(`CRI did not become ready within ${timeoutMs} ms (${last})`);
}
