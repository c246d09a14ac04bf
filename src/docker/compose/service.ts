/**
 * One service of a compose file, read into a ServiceConfig: its keys checked, short forms expanded (ports
 * and volumes as docker run reads them), references to the project's networks and volumes checked.
 */
import { parsePublish, parseVolume, resolveHostPath } from "../flags.ts";
import type { HealthCheck, RestartPolicy } from "../run_options.ts";
import { type Lookup, parseEnvFile } from "./environment.ts";
import type {
  DependencyCondition,
  NetworkConfig,
  PullPolicy,
  ServiceConfig,
  ServicePort,
  ServiceVolume,
  VolumeConfig,
} from "./model.ts";
import {
  asMap,
  byteSize,
  capitalized,
  checkKeys,
  duration,
  field,
  int,
  ioCause,
  keyValues,
  type MapNode,
  num,
  optBool,
  optStr,
  scalarText,
  seq,
  shellWords,
  str,
  strList,
} from "./values.ts";
import { ComposeError, type YNode } from "./yaml_tree.ts";

export interface NormalizeContext {
  readonly projectName: string;
  /** Absolute. */
  readonly workingDir: string;
  readonly configFiles: readonly string[];
  /** The variables (`.env` and the process environment) for `environment: [KEY]` and env files. */
  readonly lookup: Lookup;
  readonly readTextFile: (path: string) => string;
  readonly warn: (message: string) => void;
}

const SERVICE_KEYS = [
  "image",
  "build",
  "command",
  "entrypoint",
  "environment",
  "env_file",
  "ports",
  "expose",
  "volumes",
  "networks",
  "network_mode",
  "depends_on",
  "restart",
  "healthcheck",
  "labels",
  "working_dir",
  "user",
  "hostname",
  "container_name",
  "deploy",
  "scale",
  "pull_policy",
  "tty",
  "stdin_open",
  "read_only",
  "dns",
  "mem_limit",
  "cpus",
  "pids_limit",
];
const UNSUPPORTED_SERVICE = [
  "secrets",
  "configs",
  "profiles",
  "extends",
  "devices",
  "links",
  "tmpfs",
  "ipc",
  "pid",
];

/** The project's top-level networks and volumes, which services may refer to. */
export interface Declared {
  readonly networks: Readonly<Record<string, NetworkConfig>>;
  readonly volumes: Readonly<Record<string, VolumeConfig>>;
}

export function readService(
  name: string,
  node: YNode,
  ctx: NormalizeContext,
  declared: Declared,
): ServiceConfig {
  const what = `service "${name}"`;
  const map = asMap(node, `Service "${name}"`);
  for (const [key, entry] of map.entries) {
    if (UNSUPPORTED_SERVICE.includes(key)) {
      throw new ComposeError(`"${key}" in ${what} is not supported by berth compose`, entry.keyPos);
    }
  }
  checkKeys(map, SERVICE_KEYS, what);
  const image = optStr(field(map, "image"), `The image of ${what}`);
  if (image === undefined || image === "") {
    const build = map.entries.get("build");
    throw new ComposeError(
      build
        ? `Service "${name}" has build: but no image: build is not supported by berth compose; build the image elsewhere and name it with image:`
        : `Service "${name}" has no image`,
      build?.keyPos ?? node.pos,
    );
  }
  if (map.entries.has("build")) {
    ctx.warn(`Service "${name}": build: is ignored, the image "${image}" is used`);
  }

  const replicasAndScale = readScale(map, what);
  const containerName = optStr(field(map, "container_name"), `container_name of ${what}`);
  if (containerName !== undefined && replicasAndScale.scale > 1) {
    throw new ComposeError(
      `Service "${name}" has container_name "${containerName}" and ${replicasAndScale.scale} replicas: a name can only be used once`,
      map.entries.get("container_name")!.keyPos,
    );
  }
  const networkMode = readNetworkMode(field(map, "network_mode"), what);
  if (networkMode && map.entries.has("networks")) {
    throw new ComposeError(
      `Service "${name}" has both network_mode and networks`,
      map.entries.get("networks")!.keyPos,
    );
  }
  const ports = readPorts(field(map, "ports"), what);
  if (replicasAndScale.scale > 1) {
    const fixed = ports.find((p) => p.published !== undefined);
    if (fixed) {
      throw new ComposeError(
        `Service "${name}" has ${replicasAndScale.scale} replicas and the fixed host port ${fixed.published}: they would conflict; publish the container port alone (e.g. "${fixed.target}") to get a free host port per replica`,
        field(map, "ports")!.pos,
      );
    }
  }
  const limits = replicasAndScale.limits;
  const memLimit = field(map, "mem_limit");
  const cpus = field(map, "cpus");
  const pids = field(map, "pids_limit");
  const memoryBytes = memLimit ? byteSize(memLimit, `mem_limit of ${what}`) : limits.memoryBytes;
  const cpuCount = cpus ? num(cpus, `cpus of ${what}`) : limits.cpus;
  const pidsLimit = pids ? int(pids, `pids_limit of ${what}`, 1) : limits.pidsLimit;
  const command = readCommand(field(map, "command"), `command of ${what}`);
  const entrypoint = readCommand(field(map, "entrypoint"), `entrypoint of ${what}`);
  const restart = readRestart(field(map, "restart"), what) ?? replicasAndScale.restart;
  const healthcheck = readHealthcheck(field(map, "healthcheck"), what);
  const workingDir = optStr(field(map, "working_dir"), `working_dir of ${what}`);
  const user = field(map, "user") ? scalarText(field(map, "user")!, `user of ${what}`) : undefined;
  const hostname = optStr(field(map, "hostname"), `hostname of ${what}`);
  const dns = field(map, "dns");
  return {
    name,
    image,
    ...(command ? { command } : {}),
    ...(entrypoint ? { entrypoint } : {}),
    environment: readEnvironment(map, what, ctx),
    ports,
    volumes: readServiceVolumes(field(map, "volumes"), what, ctx, declared),
    networks: networkMode ? {} : readServiceNetworks(field(map, "networks"), what, declared),
    ...(networkMode ? { networkMode } : {}),
    dependsOn: readDependsOn(field(map, "depends_on"), what),
    ...(restart ? { restart } : {}),
    ...(healthcheck ? { healthcheck } : {}),
    labels: labelsOf(field(map, "labels"), `labels of ${what}`),
    ...(workingDir ? { workingDir } : {}),
    ...(user !== undefined ? { user } : {}),
    ...(hostname ? { hostname } : {}),
    ...(containerName ? { containerName } : {}),
    scale: replicasAndScale.scale,
    pullPolicy: readPullPolicy(field(map, "pull_policy"), what),
    tty: optBool(field(map, "tty"), `tty of ${what}`),
    stdinOpen: optBool(field(map, "stdin_open"), `stdin_open of ${what}`),
    readOnly: optBool(field(map, "read_only"), `read_only of ${what}`),
    dns: dns ? (dns.kind === "seq" ? strList(dns, `dns of ${what}`) : [str(dns, `dns of ${what}`)]) : [],
    ...(memoryBytes !== undefined ? { memoryBytes } : {}),
    ...(cpuCount !== undefined ? { cpus: cpuCount } : {}),
    ...(pidsLimit !== undefined ? { pidsLimit } : {}),
  };
}

interface DeployParts {
  scale: number;
  restart?: RestartPolicy;
  limits: { memoryBytes?: number; cpus?: number; pidsLimit?: number };
}

function readScale(map: MapNode, what: string): DeployParts {
  const scaleNode = field(map, "scale");
  const scale = scaleNode ? int(scaleNode, `scale of ${what}`) : undefined;
  const deployNode = field(map, "deploy");
  const out: DeployParts = { scale: scale ?? 1, limits: {} };
  if (!deployNode) return out;
  const deploy = asMap(deployNode, `deploy of ${what}`);
  checkKeys(deploy, ["replicas", "resources", "restart_policy", "mode", "labels"], `deploy of ${what}`);
  const mode = optStr(field(deploy, "mode"), `deploy.mode of ${what}`);
  if (mode !== undefined && mode !== "replicated") {
    throw new ComposeError(
      `deploy.mode "${mode}" is not supported (only replicated)`,
      field(deploy, "mode")!.pos,
    );
  }
  const replicasNode = field(deploy, "replicas");
  if (replicasNode) {
    const replicas = int(replicasNode, `deploy.replicas of ${what}`);
    if (scale !== undefined && scale !== replicas) {
      throw new ComposeError(
        `scale (${scale}) and deploy.replicas (${replicas}) of ${what} differ`,
        replicasNode.pos,
      );
    }
    out.scale = replicas;
  }
  const resources = field(deploy, "resources");
  if (resources) {
    const r = asMap(resources, `deploy.resources of ${what}`);
    checkKeys(r, ["limits", "reservations"], `deploy.resources of ${what}`);
    const limitsNode = field(r, "limits");
    if (limitsNode) {
      const l = asMap(limitsNode, `deploy.resources.limits of ${what}`);
      checkKeys(l, ["cpus", "memory", "pids"], `deploy.resources.limits of ${what}`);
      const cpus = field(l, "cpus");
      const memory = field(l, "memory");
      const pids = field(l, "pids");
      if (cpus) out.limits.cpus = num(cpus, `deploy.resources.limits.cpus of ${what}`);
      if (memory) out.limits.memoryBytes = byteSize(memory, `deploy.resources.limits.memory of ${what}`);
      if (pids) out.limits.pidsLimit = int(pids, `deploy.resources.limits.pids of ${what}`, 1);
    }
  }
  const policy = field(deploy, "restart_policy");
  if (policy) {
    const p = asMap(policy, `deploy.restart_policy of ${what}`);
    checkKeys(p, ["condition", "max_attempts", "delay", "window"], `deploy.restart_policy of ${what}`);
    const condition = optStr(field(p, "condition"), `deploy.restart_policy.condition of ${what}`) ?? "any";
    const max = field(p, "max_attempts");
    if (condition === "none") out.restart = { name: "no" };
    else if (condition === "any") out.restart = { name: "always" };
    else if (condition === "on-failure") {
      out.restart = max
        ? { name: "on-failure", maxRetries: int(max, `max_attempts of ${what}`) }
        : { name: "on-failure" };
    } else {
      throw new ComposeError(`Unknown restart_policy condition "${condition}"`, field(p, "condition")!.pos);
    }
  }
  return out;
}

function readNetworkMode(node: YNode | undefined, what: string): "host" | "none" | undefined {
  const mode = optStr(node, `network_mode of ${what}`);
  if (mode === undefined || mode === "bridge") return undefined;
  if (mode === "host" || mode === "none") return mode;
  throw new ComposeError(`network_mode "${mode}" is not supported (host, none or bridge)`, node!.pos);
}

/** A string is split into words as a shell would; a list is taken as it is. */
function readCommand(node: YNode | undefined, what: string): string[] | undefined {
  if (!node || (node.kind === "scalar" && node.value === null)) return undefined;
  if (node.kind === "seq") return strList(node, what);
  const text = scalarText(node, what);
  try {
    return shellWords(text);
  } catch (err) {
    throw new ComposeError(`${capitalized(what)}: ${(err as Error).message}`, node.pos);
  }
}

function readEnvironment(map: MapNode, what: string, ctx: NormalizeContext): Record<string, string> {
  const env = new Map<string, string>();
  const files = field(map, "env_file");
  if (files) {
    const items = files.kind === "seq" ? files.items : [files];
    for (const item of items) {
      let path: string;
      let required = true;
      if (item.kind === "map") {
        checkKeys(item, ["path", "required", "format"], `env_file of ${what}`);
        path = str(field(item, "path") ?? item, `env_file path of ${what}`);
        required = optBool(field(item, "required"), `env_file required of ${what}`) ||
          !item.entries.has("required");
      } else {
        path = str(item, `env_file of ${what}`);
      }
      const abs = resolvePath(path, ctx.workingDir);
      let text: string;
      try {
        text = ctx.readTextFile(abs);
      } catch (err) {
        if (!required && err instanceof Deno.errors.NotFound) continue;
        throw new ComposeError(
          `Cannot read env_file "${abs}" of ${what}: ${ioCause(err)}`,
          item.pos,
        );
      }
      try {
        for (const [k, v] of parseEnvFile(text, ctx.lookup)) env.set(k, v);
      } catch (err) {
        throw new ComposeError(`In env_file "${abs}" of ${what}: ${ioCause(err)}`, item.pos);
      }
    }
  }
  const environment = field(map, "environment");
  if (environment) {
    for (const [k, v] of keyValues(environment, `environment of ${what}`)) {
      // A name without a value takes the variable's value, and is left out when it is not set.
      const value = v ?? ctx.lookup(k);
      if (value === undefined) env.delete(k);
      else env.set(k, value);
    }
  }
  return Object.fromEntries([...env].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0));
}

/** A path of the compose file (a bind source, an env_file) from the project directory. */
export const resolvePath: (path: string, base: string) => string = resolveHostPath;

const PROTOCOLS = ["tcp", "udp"] as const;

function readPorts(node: YNode | undefined, what: string): ServicePort[] {
  if (!node) return [];
  const out: ServicePort[] = [];
  for (const item of seq(node, `ports of ${what}`)) {
    try {
      if (item.kind === "map") out.push(readLongPort(item, what));
      else out.push(...parsePortSpec(scalarText(item, `A port of ${what}`)));
    } catch (err) {
      if (err instanceof ComposeError) throw err;
      throw new ComposeError(`Port of ${what}: ${ioCause(err)}`, item.pos);
    }
  }
  return out;
}

function readLongPort(map: MapNode, what: string): ServicePort {
  checkKeys(
    map,
    ["target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"],
    `a port of ${what}`,
  );
  const targetNode = field(map, "target");
  if (!targetNode) throw new ComposeError(`A port of ${what} has no target`, map.pos);
  const target = portNumber(scalarText(targetNode, "target"));
  const publishedText = field(map, "published") ? scalarText(field(map, "published")!, "published") : "";
  const protocol = protocolOf(optStr(field(map, "protocol"), "protocol") ?? "tcp");
  const hostIP = optStr(field(map, "host_ip"), "host_ip");
  return {
    target,
    ...(publishedText !== "" ? { published: portNumber(publishedText) } : {}),
    ...(hostIP ? { hostIP } : {}),
    protocol,
  };
}

function portNumber(text: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new Error(`"${text}" is not a port number (1-65535)`);
  return n;
}

function protocolOf(text: string): "tcp" | "udp" {
  const p = text.toLowerCase();
  if (!(PROTOCOLS as readonly string[]).includes(p)) {
    throw new Error(`Protocol "${text}" is not supported (tcp or udp)`);
  }
  return p as "tcp" | "udp";
}

/** `[[HOST_IP:][HOST_PORT]:]CONTAINER_PORT[/PROTOCOL]`, as `docker run -p` reads it (src/docker/flags.ts). */
export function parsePortSpec(spec: string): ServicePort[] {
  return parsePublish(spec.trim()).map((p) => ({
    target: p.containerPort,
    ...(p.hostPort !== 0 ? { published: p.hostPort } : {}),
    ...(p.hostIP !== "0.0.0.0" ? { hostIP: p.hostIP } : {}),
    protocol: p.protocol,
  }));
}

function readServiceVolumes(
  node: YNode | undefined,
  what: string,
  ctx: NormalizeContext,
  declared: Declared,
): ServiceVolume[] {
  if (!node) return [];
  const byTarget = new Map<string, ServiceVolume>();
  for (const item of seq(node, `volumes of ${what}`)) {
    let v: ServiceVolume;
    try {
      v = item.kind === "map"
        ? readLongVolume(item, what, ctx)
        : parseVolumeSpec(str(item, `A volume of ${what}`), ctx.workingDir);
    } catch (err) {
      if (err instanceof ComposeError) throw err;
      throw new ComposeError(`Volume of ${what}: ${ioCause(err)}`, item.pos);
    }
    if (v.type === "volume" && v.source !== undefined && !declared.volumes[v.source]) {
      throw new ComposeError(
        `${
          capitalized(what)
        } refers to undefined volume "${v.source}": declare it under the top-level volumes`,
        item.pos,
      );
    }
    // A later mount of the same target replaces the earlier one (an override file's, typically).
    byTarget.set(v.target, v);
  }
  return [...byTarget.values()];
}

/** `SOURCE:TARGET[:MODE]` or `TARGET`, as `docker run -v` reads it (src/docker/flags.ts). */
export function parseVolumeSpec(spec: string, workingDir: string): ServiceVolume {
  const v = parseVolume(spec, workingDir);
  if (v.kind === "bind") return { type: "bind", source: v.source, target: v.target, readOnly: v.readOnly };
  if (v.kind === "volume") return { type: "volume", source: v.name, target: v.target, readOnly: v.readOnly };
  return { type: "volume", target: v.target, readOnly: v.readOnly };
}

function absTarget(target: string): string {
  if (!target.startsWith("/")) throw new Error(`The mount target "${target}" must be an absolute path`);
  return target;
}

function readLongVolume(map: MapNode, what: string, ctx: NormalizeContext): ServiceVolume {
  checkKeys(
    map,
    ["type", "source", "target", "read_only", "bind", "volume", "consistency"],
    `a volume of ${what}`,
  );
  const type = optStr(field(map, "type"), "type") ?? "volume";
  const targetNode = field(map, "target");
  if (!targetNode) throw new ComposeError(`A volume of ${what} has no target`, map.pos);
  const target = absTarget(str(targetNode, "target"));
  const source = optStr(field(map, "source"), "source");
  const readOnly = optBool(field(map, "read_only"), "read_only");
  const bindNode = field(map, "bind");
  if (bindNode) {
    checkKeys(asMap(bindNode, "bind"), ["create_host_path", "propagation", "selinux"], `bind of ${what}`);
  }
  const volumeNode = field(map, "volume");
  if (volumeNode) checkKeys(asMap(volumeNode, "volume"), ["nocopy", "subpath"], `volume of ${what}`);
  if (type === "bind") {
    if (!source) throw new ComposeError(`A bind mount of ${what} has no source`, map.pos);
    return { type: "bind", source: resolvePath(source, ctx.workingDir), target, readOnly };
  }
  if (type === "volume") return source ? { type, source, target, readOnly } : { type, target, readOnly };
  throw new ComposeError(`Volume type "${type}" is not supported (volume or bind)`, field(map, "type")!.pos);
}

function readServiceNetworks(
  node: YNode | undefined,
  what: string,
  declared: Declared,
): Record<string, { aliases: string[] }> {
  if (!node) return { default: { aliases: [] } };
  const out: Record<string, { aliases: string[] }> = {};
  const check = (name: string, pos: YNode["pos"]) => {
    if (name !== "default" && !declared.networks[name]) {
      throw new ComposeError(
        `${capitalized(what)} refers to undefined network "${name}": declare it under the top-level networks`,
        pos,
      );
    }
  };
  if (node.kind === "seq") {
    for (const item of node.items) {
      const name = str(item, `A network of ${what}`);
      check(name, item.pos);
      out[name] = { aliases: [] };
    }
    return out;
  }
  for (const [name, entry] of asMap(node, `networks of ${what}`).entries) {
    check(name, entry.keyPos);
    const v = entry.value;
    if (v.kind === "scalar" && v.value === null) {
      out[name] = { aliases: [] };
      continue;
    }
    const m = asMap(v, `Network "${name}" of ${what}`);
    checkKeys(m, ["aliases"], `network "${name}" of ${what}`);
    const aliases = field(m, "aliases");
    out[name] = { aliases: aliases ? strList(aliases, `aliases of ${what}`) : [] };
  }
  return out;
}

const CONDITIONS: readonly DependencyCondition[] = [
  "service_started",
  "service_healthy",
  "service_completed_successfully",
];

function readDependsOn(
  node: YNode | undefined,
  what: string,
): Record<string, { condition: DependencyCondition }> {
  const out: Record<string, { condition: DependencyCondition }> = {};
  if (!node) return out;
  if (node.kind === "seq") {
    for (const name of strList(node, `depends_on of ${what}`)) out[name] = { condition: "service_started" };
    return out;
  }
  for (const [name, entry] of asMap(node, `depends_on of ${what}`).entries) {
    const v = entry.value;
    if (v.kind === "scalar" && v.value === null) {
      out[name] = { condition: "service_started" };
      continue;
    }
    const m = asMap(v, `depends_on "${name}" of ${what}`);
    checkKeys(m, ["condition", "restart", "required"], `depends_on "${name}" of ${what}`);
    const condition = optStr(field(m, "condition"), "condition") ?? "service_started";
    if (!(CONDITIONS as readonly string[]).includes(condition)) {
      throw new ComposeError(
        `Unknown depends_on condition "${condition}" (${CONDITIONS.join(", ")})`,
        field(m, "condition")!.pos,
      );
    }
    out[name] = { condition: condition as DependencyCondition };
  }
  return out;
}

function readRestart(node: YNode | undefined, what: string): RestartPolicy | undefined {
  if (!node || (node.kind === "scalar" && node.value === null)) return undefined;
  if (node.kind === "scalar" && node.value === false) return { name: "no" };
  const text = scalarText(node, `restart of ${what}`);
  if (text === "no" || text === "always" || text === "unless-stopped") return { name: text };
  const m = /^on-failure(?::(\d+))?$/.exec(text);
  if (m) return m[1] ? { name: "on-failure", maxRetries: Number(m[1]) } : { name: "on-failure" };
  throw new ComposeError(
    `Invalid restart policy "${text}" (no, always, unless-stopped, on-failure[:N])`,
    node.pos,
  );
}

function readHealthcheck(node: YNode | undefined, what: string): HealthCheck | undefined {
  if (!node) return undefined;
  const map = asMap(node, `healthcheck of ${what}`);
  const w = `healthcheck of ${what}`;
  checkKeys(map, ["test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"], w);
  if (optBool(field(map, "disable"), `disable of ${w}`)) return { test: ["NONE"] };
  const testNode = field(map, "test");
  let test: string[];
  if (!testNode) throw new ComposeError(`The ${w} has no test`, map.pos);
  if (testNode.kind === "seq") {
    test = strList(testNode, `test of ${w}`);
    if (!["CMD", "CMD-SHELL", "NONE"].includes(test[0] ?? "")) {
      throw new ComposeError(`The test of ${w} must start with CMD, CMD-SHELL or NONE`, testNode.pos);
    }
  } else {
    test = ["CMD-SHELL", str(testNode, `test of ${w}`)];
  }
  const opt = (key: string) => field(map, key);
  const retries = opt("retries");
  return {
    test,
    ...(opt("interval") ? { intervalMs: duration(opt("interval")!, `interval of ${w}`) } : {}),
    ...(opt("timeout") ? { timeoutMs: duration(opt("timeout")!, `timeout of ${w}`) } : {}),
    ...(retries ? { retries: int(retries, `retries of ${w}`, 1) } : {}),
    ...(opt("start_period") ? { startPeriodMs: duration(opt("start_period")!, `start_period of ${w}`) } : {}),
  };
}

function readPullPolicy(node: YNode | undefined, what: string): PullPolicy {
  const text = optStr(node, `pull_policy of ${what}`) ?? "missing";
  if (text === "if_not_present") return "missing";
  if (text === "always" || text === "missing" || text === "never") return text;
  throw new ComposeError(`Invalid pull_policy "${text}" (always, missing, never)`, node!.pos);
}

/** `labels:` as a list of K=V or a map. */
export function labelsOf(node: YNode | undefined, what: string): Record<string, string> {
  if (!node) return {};
  return Object.fromEntries(keyValues(node, what).map(([k, v]) => [k, v ?? ""]));
}
