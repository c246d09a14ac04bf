/**
 * From a loaded project to what the runtime makes: one RunOptions per replica (named and labelled as
 * docker compose v2 and nerdctl compose do), the dependency order services start in, and the hash that
 * tells `up` whether a running container still matches its service.
 */
import { sha256HexSync } from "../../base/hash.ts";
import type { PortMapping, RunOptions, VolumeMount } from "../run_options.ts";
import type { ComposeProject, ServiceConfig } from "./model.ts";
import { ComposeError } from "./yaml_tree.ts";

/** Label keys of docker compose, so other tools read Berth's projects. */
export const LABELS = {
  project: "com.docker.compose.project",
  service: "com.docker.compose.service",
  number: "com.docker.compose.container-number",
  configHash: "com.docker.compose.config-hash",
  oneoff: "com.docker.compose.oneoff",
  workingDir: "com.docker.compose.project.working_dir",
  configFiles: "com.docker.compose.project.config_files",
  network: "com.docker.compose.network",
  volume: "com.docker.compose.volume",
} as const;

/** `<project>-<service>-<n>`, or the service's container_name. */
export function containerName(project: ComposeProject, service: ServiceConfig, n: number): string {
  return service.containerName ?? `${project.name}-${service.name}-${n}`;
}

/**
 * The hash of what makes a service's containers: any change recreates them. Scale is left out (more
 * or fewer replicas do not touch the others), as docker compose leaves it out.
 */
export function configHash(service: ServiceConfig): string {
  const { scale: _scale, ...rest } = service;
  return sha256HexSync(canonicalJson(rest));
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${
      keys
        .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
        .join(",")
    }}`;
  }
  return JSON.stringify(value);
}

export interface ToRunOptions {
  /** Picks a host port for a port published without one; default: an error. */
  readonly hostPortFor?: (port: { hostIP: string; protocol: "tcp" | "udp"; containerPort: number }) => number;
}

/** The container of replica `n` (1-based) of a service. */
export function toRunOptions(
  project: ComposeProject,
  service: ServiceConfig,
  n: number,
  options: ToRunOptions = {},
): RunOptions {
  const ports: PortMapping[] = service.ports.map((p) => {
    const hostIP = p.hostIP ?? "0.0.0.0";
    let hostPort = p.published;
    if (hostPort === undefined) {
      if (!options.hostPortFor) {
        throw new ComposeError(`Service "${service.name}" publishes port ${p.target} without a host port`);
      }
      hostPort = options.hostPortFor({ hostIP, protocol: p.protocol, containerPort: p.target });
    }
    return { hostIP, hostPort, containerPort: p.target, protocol: p.protocol };
  });
  const volumes: VolumeMount[] = service.volumes.map((v) => {
    if (v.type === "bind") return { kind: "bind", source: v.source, target: v.target, readOnly: v.readOnly };
    if (v.source === undefined) return { kind: "anonymous", target: v.target, readOnly: v.readOnly };
    return { kind: "volume", name: project.volumes[v.source]!.name, target: v.target, readOnly: v.readOnly };
  });
  const networks = service.networkMode
    ? [service.networkMode]
    : Object.keys(service.networks).map((key) => project.networks[key]!.name);
  const aliases = [
    service.name,
    ...Object.values(service.networks).flatMap((n) => n.aliases),
  ].filter((a, i, all) => all.indexOf(a) === i);
  const labels: Record<string, string> = {
    ...service.labels,
    [LABELS.project]: project.name,
    [LABELS.service]: service.name,
    [LABELS.number]: String(n),
    [LABELS.configHash]: configHash(service),
    [LABELS.oneoff]: "False",
    [LABELS.workingDir]: project.workingDir,
    [LABELS.configFiles]: project.configFiles.join(","),
  };
  return {
    image: service.image,
    name: containerName(project, service, n),
    ...(service.command ? { command: service.command } : {}),
    ...(service.entrypoint ? { entrypoint: service.entrypoint } : {}),
    env: Object.entries(service.environment).map(([k, v]) => `${k}=${v}`),
    ports,
    volumes,
    networks,
    ...(service.restart ? { restart: service.restart } : {}),
    labels,
    ...(service.workingDir ? { workingDir: service.workingDir } : {}),
    ...(service.user !== undefined ? { user: service.user } : {}),
    ...(service.hostname ? { hostname: service.hostname } : {}),
    ...(service.dns.length ? { dns: service.dns } : {}),
    ...(service.memoryBytes !== undefined ? { memoryBytes: service.memoryBytes } : {}),
    ...(service.cpus !== undefined ? { cpus: service.cpus } : {}),
    ...(service.pidsLimit !== undefined ? { pidsLimit: service.pidsLimit } : {}),
    ...(service.tty ? { tty: true } : {}),
    ...(service.stdinOpen ? { interactive: true } : {}),
    ...(service.readOnly ? { readOnly: true } : {}),
    ...(service.healthcheck ? { healthcheck: service.healthcheck } : {}),
    ...(service.networkMode ? {} : { aliases }),
  };
}

/**
 * The services in start order: every service after those it depends on, ties in file order. `only`
 * limits the result to those services and what they depend on, transitively. A cycle is an error that
 * names its services.
 */
export function startOrder(project: ComposeProject, only?: readonly string[]): string[] {
  for (const name of only ?? []) {
    if (!project.services[name]) throw new ComposeError(`No such service: "${name}"`);
  }
  const wanted = new Set<string>();
  const want = (name: string) => {
    if (wanted.has(name)) return;
    wanted.add(name);
    for (const dep of Object.keys(project.services[name]!.dependsOn)) want(dep);
  };
  for (const name of only?.length ? only : Object.keys(project.services)) want(name);

  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (name: string, trail: string[]) => {
    const s = state.get(name);
    if (s === "done") return;
    if (s === "visiting") {
      const cycle = [...trail.slice(trail.indexOf(name)), name];
      throw new ComposeError(`Dependency cycle between services: ${cycle.join(" -> ")}`);
    }
    state.set(name, "visiting");
    for (const dep of Object.keys(project.services[name]!.dependsOn)) visit(dep, [...trail, name]);
    state.set(name, "done");
    order.push(name);
  };
  for (const name of Object.keys(project.services)) if (wanted.has(name)) visit(name, []);
  return order;
}
