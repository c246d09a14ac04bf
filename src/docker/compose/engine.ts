/**
 * The verbs of `berth compose` over a ComposeBackend: `up` converges the runtime on the project
 * (networks, volumes, images, then each service's containers in dependency order, waiting for the
 * conditions of depends_on), `down` takes the project apart, and the rest act on its containers.
 *
 * A failure half-way through `up` stops there and reports which service failed and why; what was
 * already made (networks, volumes, containers) is left as it is, labelled, as docker compose leaves
 * it: a second `up` continues from that state (unchanged containers are kept) and `down` removes it.
 */
import type { RunOptions } from "../run_options.ts";
import type { ComposeBackend, ContainerInfo, LogLine } from "./backend.ts";
import { configHash, containerName, LABELS, startOrder, toRunOptions } from "./convert.ts";
import type { ComposeProject, ServiceConfig } from "./model.ts";
import { pickHostPort } from "./ports.ts";
import { renderProject } from "./render.ts";
import { ComposeError } from "./yaml_tree.ts";

/** What every verb may be given. */
export interface EngineOptions {
  /** Progress lines (` Container shop-web-1  Started`); default: none. */
  readonly progress?: (line: string) => void;
  /** Ends waits, follows and attached `up`. */
  readonly signal?: AbortSignal;
  /** For tests: the clock of health checks and polls. */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly now?: () => number;
  /** A host port for a port published without one; default: one the kernel picks. */
  readonly allocateHostPort?: (hostIP: string, protocol: "tcp" | "udp") => Promise<number>;
  /** Between looks at a dependency that should run to completion; default 500 ms. */
  readonly pollIntervalMs?: number;
}

/** docker compose's stop timeout. */
export const DEFAULT_STOP_TIMEOUT_S = 10;

/** Docker's healthcheck defaults. */
const HEALTH_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 };

function sleepFor(options: EngineOptions): (ms: number) => Promise<void> {
  if (options.sleep) return (ms) => options.sleep!(ms, options.signal);
  return (ms) =>
    new Promise((resolve, reject) => {
      const signal = options.signal;
      if (signal?.aborted) return reject(signal.reason);
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
}

const numberOf = (c: ContainerInfo) => Number(c.labels[LABELS.number] ?? "0");
const serviceOf = (c: ContainerInfo) => c.labels[LABELS.service] ?? "";

async function projectContainers(project: ComposeProject, backend: ComposeBackend): Promise<ContainerInfo[]> {
  const all = await backend.listContainers({ [LABELS.project]: project.name });
  return all.sort((a, b) => serviceOf(a).localeCompare(serviceOf(b)) || numberOf(a) - numberOf(b));
}

async function serviceContainers(
  project: ComposeProject,
  backend: ComposeBackend,
  service: string,
): Promise<ContainerInfo[]> {
  const list = await backend.listContainers({ [LABELS.project]: project.name, [LABELS.service]: service });
  return list.sort((a, b) => numberOf(a) - numberOf(b));
}

// ---------------------------------------------------------------------------------------------- up

export interface UpOptions extends EngineOptions {
  /** Only these services and what they depend on; default all. */
  readonly services?: readonly string[];
  /** `-d`: return once started; otherwise follow the logs until the signal, then stop. */
  readonly detach?: boolean;
  readonly removeOrphans?: boolean;
  /** Create what is missing, start nothing. */
  readonly noStart?: boolean;
  /** Log lines of an attached `up`. */
  readonly write?: (text: string) => void;
  readonly timeoutS?: number;
}

export async function up(
  project: ComposeProject,
  backend: ComposeBackend,
  options: UpOptions = {},
): Promise<void> {
  const order = startOrder(project, options.services);
  const progress = options.progress ?? (() => {});
  await handleOrphans(project, backend, options);
  await pullMissing(project, backend, order, options);
  await ensureNetworks(project, backend, order, progress);
  await ensureVolumes(project, backend, order, progress);
  for (const name of order) {
    const service = project.services[name]!;
    try {
      if (!options.noStart) await waitForDependencies(project, backend, service, options);
      await convergeService(project, backend, service, options);
    } catch (err) {
      if (options.signal?.aborted) throw err;
      throw new ComposeError(
        `Cannot start service "${name}": ${(err as Error).message}` +
          ` (what was made so far is kept; "berth compose down" removes it)`,
      );
    }
  }
  if (options.detach || options.noStart) return;
  await attach(project, backend, order, options);
}

async function handleOrphans(
  project: ComposeProject,
  backend: ComposeBackend,
  options: UpOptions,
): Promise<void> {
  const orphans = (await projectContainers(project, backend)).filter((c) => !project.services[serviceOf(c)]);
  if (orphans.length === 0) return;
  if (!options.removeOrphans) {
    options.progress?.(
      `WARN: Found orphan containers (${
        orphans.map((c) => c.name).join(", ")
      }) for this project. Run with --remove-orphans to clean them up`,
    );
    return;
  }
  for (const c of orphans) await removeContainer(backend, c, { volumes: false, options });
}

async function pullMissing(
  project: ComposeProject,
  backend: ComposeBackend,
  order: readonly string[],
  options: EngineOptions,
): Promise<void> {
  const seen = new Set<string>();
  for (const name of order) {
    const s = project.services[name]!;
    if (seen.has(s.image)) continue;
    seen.add(s.image);
    if (s.pullPolicy === "never") {
      if (!await backend.imageExists(s.image)) {
        throw new ComposeError(
          `Service "${name}": image "${s.image}" is not present and pull_policy is never`,
        );
      }
      continue;
    }
    if (s.pullPolicy === "missing" && await backend.imageExists(s.image)) continue;
    options.progress?.(` Image ${s.image}  Pulling`);
    try {
      await backend.pullImage(s.image, options.signal);
    } catch (err) {
      throw new ComposeError(
        `Cannot pull the image "${s.image}" of service "${name}": ${(err as Error).message}`,
      );
    }
    options.progress?.(` Image ${s.image}  Pulled`);
  }
}

function usedKeys(
  project: ComposeProject,
  order: readonly string[],
  kind: "networks" | "volumes",
): Set<string> {
  const keys = new Set<string>();
  for (const name of order) {
    const s = project.services[name]!;
    if (kind === "networks") Object.keys(s.networks).forEach((k) => keys.add(k));
    else s.volumes.forEach((v) => v.type === "volume" && v.source !== undefined && keys.add(v.source));
  }
  return keys;
}

async function ensureNetworks(
  project: ComposeProject,
  backend: ComposeBackend,
  order: readonly string[],
  progress: (line: string) => void,
): Promise<void> {
  for (const key of usedKeys(project, order, "networks")) {
    const net = project.networks[key]!;
    if (await backend.networkExists(net.name)) continue;
    if (net.external) {
      throw new ComposeError(
        `Network "${net.name}" declared as external could not be found: create it first`,
      );
    }
    const labels = { ...net.labels, [LABELS.project]: project.name, [LABELS.network]: key };
    await backend.createNetwork(net.name, { labels, ...(net.subnet ? { subnet: net.subnet } : {}) });
    progress(` Network ${net.name}  Created`);
  }
}

async function ensureVolumes(
  project: ComposeProject,
  backend: ComposeBackend,
  order: readonly string[],
  progress: (line: string) => void,
): Promise<void> {
  for (const key of usedKeys(project, order, "volumes")) {
    const vol = project.volumes[key]!;
    if (await backend.volumeExists(vol.name)) continue;
    if (vol.external) {
      throw new ComposeError(`Volume "${vol.name}" declared as external could not be found: create it first`);
    }
    await backend.createVolume(vol.name, {
      labels: { ...vol.labels, [LABELS.project]: project.name, [LABELS.volume]: key },
    });
    progress(` Volume ${vol.name}  Created`);
  }
}

/** Keeps containers whose config hash matches, recreates the others, adds and removes replicas. */
async function convergeService(
  project: ComposeProject,
  backend: ComposeBackend,
  service: ServiceConfig,
  options: UpOptions,
): Promise<void> {
  const progress = options.progress ?? (() => {});
  const hash = configHash(service);
  const existing = await serviceContainers(project, backend, service.name);
  const kept = new Set<ContainerInfo>();
  for (let n = 1; n <= service.scale; n++) {
    const current = existing.find((c) => numberOf(c) === n && !kept.has(c));
    if (current && current.labels[LABELS.configHash] === hash) {
      kept.add(current);
      if (current.running || options.noStart) {
        progress(` Container ${current.name}  Running`);
        continue;
      }
      await backend.start(current.id);
      progress(` Container ${current.name}  Started`);
      continue;
    }
    if (current) {
      kept.add(current);
      progress(` Container ${current.name}  Recreate`);
      await removeContainer(backend, current, { volumes: true, options });
    }
    const run = await replicaOptions(project, service, n, options);
    const id = await backend.create(run);
    progress(` Container ${run.name}  Created`);
    if (options.noStart) continue;
    await backend.start(id);
    progress(` Container ${run.name}  Started`);
  }
  // Replicas beyond the scale, and duplicates of a number, go.
  for (const c of existing) {
    if (kept.has(c)) continue;
    await removeContainer(backend, c, { volumes: true, options });
    progress(` Container ${c.name}  Removed`);
  }
}

async function replicaOptions(
  project: ComposeProject,
  service: ServiceConfig,
  n: number,
  options: EngineOptions,
): Promise<RunOptions> {
  const allocate = options.allocateHostPort ?? pickHostPort;
  const free: number[] = [];
  for (const p of service.ports) {
    if (p.published === undefined) free.push(await allocate(p.hostIP ?? "0.0.0.0", p.protocol));
  }
  return toRunOptions(project, service, n, { hostPortFor: () => free.shift()! });
}

async function removeContainer(
  backend: ComposeBackend,
  c: ContainerInfo,
  how: { volumes: boolean; options: { timeoutS?: number } },
): Promise<void> {
  if (c.running) await backend.stop(c.id, how.options.timeoutS ?? DEFAULT_STOP_TIMEOUT_S);
  await backend.remove(c.id, { volumes: how.volumes });
}

async function waitForDependencies(
  project: ComposeProject,
  backend: ComposeBackend,
  service: ServiceConfig,
  options: EngineOptions,
): Promise<void> {
  for (const [dep, { condition }] of Object.entries(service.dependsOn)) {
    if (condition === "service_healthy") await waitHealthy(project, backend, dep, options);
    else if (condition === "service_completed_successfully") {
      await waitCompleted(project, backend, dep, options);
    }
  }
}

/** Runs the dependency's healthcheck in each of its containers until it passes, as docker's monitor would. */
async function waitHealthy(
  project: ComposeProject,
  backend: ComposeBackend,
  dep: string,
  options: EngineOptions,
): Promise<void> {
  const check = project.services[dep]!.healthcheck;
  if (!check || check.test[0] === "NONE") {
    throw new ComposeError(`Dependency "${dep}" has no healthcheck, so it can never be service_healthy`);
  }
  const argv = check.test[0] === "CMD-SHELL"
    ? ["/bin/sh", "-c", check.test.slice(1).join(" ")]
    : check.test.slice(1);
  const { intervalMs, timeoutMs, retries, startPeriodMs } = { ...HEALTH_DEFAULTS, ...check };
  const sleep = sleepFor(options);
  const now = options.now ?? Date.now;
  const containers = (await serviceContainers(project, backend, dep)).filter((c) => c.running);
  if (containers.length === 0) throw new ComposeError(`Dependency "${dep}" has no running container`);
  for (const c of containers) {
    options.progress?.(` Container ${c.name}  Waiting`);
    const started = now();
    let failures = 0;
    for (;;) {
      const outcome = await runCheck(backend, c, argv, timeoutMs, options.signal);
      if (outcome === 0) break;
      if (typeof outcome === "string" && outcome.startsWith("exited")) {
        throw new ComposeError(`Dependency "${dep}" failed: container ${c.name} ${outcome}`);
      }
      // Failures in the start period do not count, as docker's.
      if (now() - started >= startPeriodMs) failures++;
      if (failures >= retries) {
        const last = typeof outcome === "number" ? `exit code ${outcome}` : outcome;
        throw new ComposeError(
          `Dependency "${dep}" failed: container ${c.name} is unhealthy (healthcheck failed ${retries} times; last: ${last})`,
        );
      }
      await sleep(intervalMs);
    }
    options.progress?.(` Container ${c.name}  Healthy`);
  }
}

/** An exit code, or why there is none ("timed out after 500 ms", "exited (1)"). */
async function runCheck(
  backend: ComposeBackend,
  c: ContainerInfo,
  argv: readonly string[],
  timeoutMs: number,
  outer?: AbortSignal,
): Promise<number | string> {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(new Error("healthcheck timed out")), timeoutMs);
  const signal = outer ? AbortSignal.any([outer, timeout.signal]) : timeout.signal;
  try {
    return await backend.exec(c.id, argv, { quiet: true, signal });
  } catch (err) {
    if (outer?.aborted) throw err;
    if (timeout.signal.aborted) return `timed out after ${timeoutMs} ms`;
    const now = (await backend.listContainers({ [LABELS.project]: c.labels[LABELS.project] ?? "" }))
      .find((x) => x.id === c.id);
    if (!now?.running) return `exited (${now?.exitCode ?? "removed"})`;
    return (err as Error).message;
  } finally {
    clearTimeout(timer);
  }
}

async function waitCompleted(
  project: ComposeProject,
  backend: ComposeBackend,
  dep: string,
  options: EngineOptions,
): Promise<void> {
  const sleep = sleepFor(options);
  for (;;) {
    const containers = await serviceContainers(project, backend, dep);
    if (containers.length === 0) throw new ComposeError(`Dependency "${dep}" has no container`);
    if (containers.every((c) => !c.running)) {
      const failed = containers.find((c) => c.exitCode !== 0);
      if (failed) {
        throw new ComposeError(
          `Dependency "${dep}" did not complete successfully: container ${failed.name} exited with ${
            failed.exitCode ?? "no exit code"
          }`,
        );
      }
      return;
    }
    await sleep(options.pollIntervalMs ?? 500);
  }
}

/** `up` without -d: the services' logs until the signal, then their containers are stopped. */
async function attach(
  project: ComposeProject,
  backend: ComposeBackend,
  order: readonly string[],
  options: UpOptions,
): Promise<void> {
  const containers = (await projectContainers(project, backend)).filter((c) => order.includes(serviceOf(c)));
  const write = options.write ?? ((t: string) => console.log(t));
  try {
    await backend.logs(
      containers,
      { follow: true, timestamps: false, ...(options.signal ? { signal: options.signal } : {}) },
      prefixer(containers, write),
    );
  } catch (err) {
    if (!options.signal?.aborted) throw err;
  }
  options.progress?.("Gracefully stopping...");
  await stop(project, backend, {
    services: order,
    ...(options.timeoutS !== undefined ? { timeoutS: options.timeoutS } : {}),
    ...(options.progress ? { progress: options.progress } : {}),
  });
}

/** Lines as docker compose prints them: `name  | text`, names padded to one width. */
function prefixer(
  containers: readonly ContainerInfo[],
  write: (text: string) => void,
): (line: LogLine) => void {
  const width = Math.max(0, ...containers.map((c) => c.name.length));
  return (line) =>
    write(`${line.container.padEnd(width)}  | ${line.time ? `${line.time} ` : ""}${line.text}`);
}

// ------------------------------------------------------------------------------------------ down

export interface DownOptions extends EngineOptions {
  /** `-v`: named (non-external) volumes and anonymous volumes too. */
  readonly volumes?: boolean;
  readonly removeOrphans?: boolean;
  readonly timeoutS?: number;
}

export async function down(
  project: ComposeProject,
  backend: ComposeBackend,
  options: DownOptions = {},
): Promise<void> {
  const progress = options.progress ?? (() => {});
  const containers = await projectContainers(project, backend);
  const orphans = containers.filter((c) => !project.services[serviceOf(c)]);
  // Dependents go first: the reverse of the start order.
  const order = startOrder(project).reverse();
  const ordered = order.flatMap((s) => containers.filter((c) => serviceOf(c) === s));
  if (orphans.length && !options.removeOrphans) {
    progress(
      `WARN: Found orphan containers (${
        orphans.map((c) => c.name).join(", ")
      }) for this project. Run with --remove-orphans to clean them up`,
    );
  }
  for (const c of [...ordered, ...(options.removeOrphans ? orphans : [])]) {
    if (c.running) {
      await backend.stop(c.id, options.timeoutS ?? DEFAULT_STOP_TIMEOUT_S);
      progress(` Container ${c.name}  Stopped`);
    }
    await backend.remove(c.id, { volumes: options.volumes ?? false });
    progress(` Container ${c.name}  Removed`);
  }
  for (const net of Object.values(project.networks)) {
    if (net.external || !await backend.networkExists(net.name)) continue;
    await backend.removeNetwork(net.name);
    progress(` Network ${net.name}  Removed`);
  }
  if (!options.volumes) return;
  for (const vol of Object.values(project.volumes)) {
    if (vol.external || !await backend.volumeExists(vol.name)) continue;
    await backend.removeVolume(vol.name);
    progress(` Volume ${vol.name}  Removed`);
  }
}

// ------------------------------------------------------------------------------- containers' verbs

export interface PsOptions {
  /** `-a`: stopped containers too. */
  readonly all?: boolean;
  readonly services?: readonly string[];
}

/** The project's containers in service (file) order, then replica number. */
export async function ps(
  project: ComposeProject,
  backend: ComposeBackend,
  options: PsOptions = {},
): Promise<ContainerInfo[]> {
  const rank = (c: ContainerInfo) => {
    const i = Object.keys(project.services).indexOf(serviceOf(c));
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  return (await projectContainers(project, backend))
    .filter((c) => options.all || c.running)
    .filter((c) => !options.services?.length || options.services.includes(serviceOf(c)))
    .sort((a, b) => rank(a) - rank(b) || numberOf(a) - numberOf(b));
}

export interface LogsOptions extends EngineOptions {
  readonly services?: readonly string[];
  readonly follow?: boolean;
  readonly tail?: number;
  readonly timestamps?: boolean;
}

export async function logs(
  project: ComposeProject,
  backend: ComposeBackend,
  write: (text: string) => void,
  options: LogsOptions = {},
): Promise<void> {
  for (const s of options.services ?? []) {
    if (!project.services[s]) throw new ComposeError(`No such service: "${s}"`);
  }
  const containers = await ps(project, backend, {
    all: true,
    ...(options.services ? { services: options.services } : {}),
  });
  await backend.logs(containers, {
    follow: options.follow ?? false,
    timestamps: options.timestamps ?? false,
    ...(options.tail !== undefined ? { tail: options.tail } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  }, prefixer(containers, write));
}

export interface ExecCommand {
  readonly service: string;
  readonly command: readonly string[];
  /** `--index`; default 1. */
  readonly index?: number;
  readonly tty?: boolean;
  readonly interactive?: boolean;
  readonly env?: readonly string[];
  readonly workingDir?: string;
  readonly user?: string;
  readonly signal?: AbortSignal;
}

/** Runs a command in a running replica of a service; resolves to its exit code. */
export async function exec(
  project: ComposeProject,
  backend: ComposeBackend,
  command: ExecCommand,
): Promise<number> {
  const service = project.services[command.service];
  if (!service) throw new ComposeError(`No such service: "${command.service}"`);
  const index = command.index ?? 1;
  const target = (await serviceContainers(project, backend, service.name)).find((c) => numberOf(c) === index);
  const name = containerName(project, service, index);
  if (!target) {
    throw new ComposeError(
      `Service "${service.name}" has no container ${name}: run "berth compose up" first`,
    );
  }
  if (!target.running) throw new ComposeError(`Container ${target.name} is not running`);
  if (command.command.length === 0) throw new ComposeError(`No command given to run in ${target.name}`);
  const { service: _s, command: argv, index: _i, ...rest } = command;
  return await backend.exec(target.id, argv, rest);
}

export interface StopOptions extends EngineOptions {
  readonly services?: readonly string[];
  readonly timeoutS?: number;
}

/** Stops running containers, dependents first. */
export async function stop(
  project: ComposeProject,
  backend: ComposeBackend,
  options: StopOptions = {},
): Promise<void> {
  for (const name of startOrder(project, options.services).reverse()) {
    for (const c of await serviceContainers(project, backend, name)) {
      if (!c.running) continue;
      await backend.stop(c.id, options.timeoutS ?? DEFAULT_STOP_TIMEOUT_S);
      options.progress?.(` Container ${c.name}  Stopped`);
    }
  }
}

/** Starts existing stopped containers, dependencies first (`up` makes missing ones). */
export async function start(
  project: ComposeProject,
  backend: ComposeBackend,
  options: StopOptions = {},
): Promise<void> {
  for (const name of startOrder(project, options.services)) {
    for (const c of await serviceContainers(project, backend, name)) {
      if (c.running) continue;
      await backend.start(c.id);
      options.progress?.(` Container ${c.name}  Started`);
    }
  }
}

export async function restart(
  project: ComposeProject,
  backend: ComposeBackend,
  options: StopOptions = {},
): Promise<void> {
  await stop(project, backend, options);
  await start(project, backend, options);
}

export interface PullOptions extends EngineOptions {
  readonly services?: readonly string[];
}

/** Pulls every service's image (once per reference), whatever the pull policy. */
export async function pull(
  project: ComposeProject,
  backend: ComposeBackend,
  options: PullOptions = {},
): Promise<void> {
  const names = options.services?.length
    ? startOrder(project, options.services).filter((s) => options.services!.includes(s))
    : Object.keys(project.services);
  const refs = [...new Set(names.map((s) => project.services[s]!.image))];
  for (const ref of refs) {
    options.progress?.(` Image ${ref}  Pulling`);
    await backend.pullImage(ref, options.signal);
    options.progress?.(` Image ${ref}  Pulled`);
  }
}

export interface ConfigOptions {
  /** `--services`: the service names, one a line. */
  readonly services?: boolean;
}

/** The normalized model as YAML (or the service names). */
export function config(project: ComposeProject, options: ConfigOptions = {}): string {
  if (options.services) return Object.keys(project.services).map((s) => `${s}\n`).join("");
  return renderProject(project);
}
