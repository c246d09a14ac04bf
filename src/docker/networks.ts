/**
 * Docker-style networks over the CNI conf folder, as nerdctl keeps them: each bridge network is one
 * conflist (`berth-<name>.conflist`, nerdctl's plugin chain) with its id (`nerdctlID`) and labels in
 * it, so there is no other database to go stale. `host` and `none` are built-in pseudo-networks with no
 * file; `bridge` is the default network (bridge `berth0`, 10.4.0.0/24), written on first use.
 * Which containers are on a network is known from the hosts store (src/docker/hosts.ts).
 */
import { createHash } from "node:crypto";
import { writeFileAtomic } from "../base/atomic_write.ts";
import { alreadyExists, errorKind, failedPrecondition, invalidArgument, notFound } from "../base/errors.ts";
import { outputClean } from "../base/spawn.ts";
import {
  bridgeNetworkConfig,
  bridgeNetworkPath,
  loadConfDir,
  type NetworkConfigList,
} from "../core/cni/mod.ts";
import { isCidr } from "../core/cni/result.ts";
import { cniLockPath, withFileLock } from "./file_lock.ts";
import { attachedContainers } from "./hosts.ts";
import type { DockerPaths } from "./paths.ts";

export const DEFAULT_NETWORK = "bridge";
export const DEFAULT_BRIDGE = "berth0";
export const DEFAULT_SUBNET = "10.4.0.0/24";
/** Networks that need no CNI: the host's own stack, and a namespace with loopback only. */
export const PSEUDO_NETWORKS: readonly string[] = ["host", "none"];
/** host-local's store when a conflist names none. */
const HOST_LOCAL_DEFAULT_DIR = "/var/lib/cni/networks";

export interface NetworkSubnet {
  readonly subnet: string;
  readonly gateway?: string;
}

export interface NetworkInfo {
  readonly name: string;
  /** 64 hex digits; `network ls` shows the first 12. */
  readonly id: string;
  /** The conflist; empty for `host` and `none`. */
  readonly file: string;
  /** "bridge" for conflists whose first plugin is a bridge, the plugin type otherwise; "host"/"null". */
  readonly driver: string;
  /** The bridge interface, for bridge networks. */
  readonly bridge?: string;
  readonly subnets: readonly NetworkSubnet[];
  readonly labels: Readonly<Record<string, string>>;
  /** host-local's folder of this network's leases (`<dataDir>/<name>`), when it uses host-local. */
  readonly ipamDir?: string;
}

export interface NetworkContainer {
  readonly id: string;
  readonly namespace: string;
  readonly name: string;
  /** Its address on the network. */
  readonly ip: string;
}

export interface NetworkDetails extends NetworkInfo {
  readonly containers: readonly NetworkContainer[];
}

export interface CreateNetworkOptions {
  /** Default: the next free 10.4.N.0/24 (N ≥ 1). */
  readonly subnet?: string;
  /** Default: the subnet's first address. */
  readonly gateway?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** Only "bridge" (the default). */
  readonly driver?: string;
  /** Default `br-<12 hex>` (src/core/cni/bridge_network.ts). */
  readonly bridge?: string;
  /** host-local's store (default its own, /var/lib/cni/networks). */
  readonly ipamDataDir?: string;
}

/** The networks: `host` and `none` first, then the conflists of the conf folder in file order. */
export async function listNetworks(paths: DockerPaths): Promise<NetworkInfo[]> {
  const { networks } = await loadConfDir(paths.cniConfDir);
  return [...PSEUDO_NETWORKS.map(pseudoNetwork), ...networks.map(networkInfo)];
}

/** One network by name, full id or id prefix, with the containers attached to it. */
export async function inspectNetwork(paths: DockerPaths, nameOrId: string): Promise<NetworkDetails> {
  const net = findNetwork(await listNetworks(paths), nameOrId);
  const containers: NetworkContainer[] = [];
  for (const { namespace, meta } of await attachedContainers(paths.dataStore)) {
    const ip = meta.networks[net.name];
    if (ip !== undefined) containers.push({ id: meta.id, namespace, name: meta.name, ip });
  }
  return { ...net, containers };
}

/** Writes a new bridge network's conflist; resolves to it. */
export async function createNetwork(
  paths: DockerPaths,
  name: string,
  options: CreateNetworkOptions = {},
): Promise<NetworkInfo> {
  const driver = options.driver ?? "bridge";
  if (driver !== "bridge") {
    throw invalidArgument(
      `Cannot create network "${name}": driver "${driver}" is not supported (use bridge)`,
    );
  }
  if (PSEUDO_NETWORKS.includes(name) || name === DEFAULT_NETWORK) {
    throw invalidArgument(`Cannot create network "${name}": the name is reserved for a built-in network`);
  }
  return await withFileLock(cniLockPath(paths.cniConfDir), async () => {
    const existing = await listNetworks(paths);
    if (existing.some((n) => n.name === name)) {
      throw alreadyExists(`Network "${name}" already exists: remove it first (berth network rm ${name})`);
    }
    const taken = existing.flatMap((n) =>
      n.subnets.map((s) => ({ subnet: s.subnet, by: `network "${n.name}"` }))
    );
    let subnet = options.subnet;
    if (subnet !== undefined) {
      subnet = checkSubnet(name, subnet);
      const clash = taken.find((t) => overlaps(t.subnet, subnet!));
      if (clash) {
        throw invalidArgument(
          `Cannot create network "${name}": subnet ${subnet} overlaps ${clash.subnet} of ${clash.by}`,
        );
      }
    } else {
      subnet = freeSubnet([...taken.map((t) => t.subnet), ...(await hostSubnets())]);
      if (!subnet) {
        throw failedPrecondition(
          `Cannot create network "${name}": no free subnet left in 10.4.1.0/24…10.4.255.0/24 (pass --subnet)`,
        );
      }
    }
    const gateway = options.gateway ?? firstHost(subnet);
    if (!inSubnet(gateway, subnet)) {
      throw invalidArgument(`Cannot create network "${name}": gateway ${gateway} is not in subnet ${subnet}`);
    }
    const id = randomHex(32);
    await writeNetwork(paths.cniConfDir, name, id, {
      subnet,
      gateway,
      // nerdctl's br-<id>: a network made again under an old name never meets a bridge left by the old one.
      bridge: options.bridge ?? `br-${id.slice(0, 12)}`,
      labels: options.labels,
      ipamDataDir: options.ipamDataDir,
    });
    return findNetwork(await listNetworks(paths), name);
  });
}

/**
 * Writes the default network `bridge` (bridge `berth0`, 10.4.0.0/24) when the conf folder has none;
 * resolves to it either way.
 */
export async function ensureDefaultNetwork(paths: DockerPaths): Promise<NetworkInfo> {
  const found = (await listNetworks(paths)).find((n) => n.name === DEFAULT_NETWORK);
  if (found) return found;
  return await withFileLock(cniLockPath(paths.cniConfDir), async () => {
    const again = (await listNetworks(paths)).find((n) => n.name === DEFAULT_NETWORK);
    if (again) return again;
    await writeNetwork(paths.cniConfDir, DEFAULT_NETWORK, sha256(DEFAULT_NETWORK), {
      subnet: DEFAULT_SUBNET,
      gateway: firstHost(DEFAULT_SUBNET),
      bridge: DEFAULT_BRIDGE,
    });
    return findNetwork(await listNetworks(paths), DEFAULT_NETWORK);
  });
}

/**
 * Removes a network: its conflist, its bridge interface and its host-local leases folder, nothing else.
 * Refuses the built-in ones and a network a container is attached to.
 */
export async function removeNetwork(paths: DockerPaths, nameOrId: string): Promise<NetworkInfo> {
  return await withFileLock(cniLockPath(paths.cniConfDir), async () => {
    const net = findNetwork(await listNetworks(paths), nameOrId);
    if (PSEUDO_NETWORKS.includes(net.name) || net.name === DEFAULT_NETWORK) {
      throw failedPrecondition(`Network "${net.name}" is built in and cannot be removed`);
    }
    const users = (await attachedContainers(paths.dataStore)).filter(({ meta }) => net.name in meta.networks);
    if (users.length > 0) {
      const names = users.map(({ meta }) => meta.name || meta.id);
      throw failedPrecondition(
        `Network "${net.name}" is in use by container${names.length > 1 ? "s" : ""} ${names.join(", ")}: ` +
          `stop or remove ${names.length > 1 ? "them" : "it"} first (berth rm -f ${names.join(" ")})`,
      );
    }
    await Deno.remove(net.file).catch(ignoreNotFound);
    if (net.bridge) await deleteLink(net.bridge);
    if (net.ipamDir) await Deno.remove(net.ipamDir, { recursive: true }).catch(ignoreNotFound);
    return net;
  });
}

/** Removes every user network no container is attached to; resolves to their names. */
export async function pruneNetworks(paths: DockerPaths): Promise<string[]> {
  const inUse = new Set(
    (await attachedContainers(paths.dataStore)).flatMap(({ meta }) => Object.keys(meta.networks)),
  );
  const removed: string[] = [];
  for (const net of await listNetworks(paths)) {
    if (PSEUDO_NETWORKS.includes(net.name) || net.name === DEFAULT_NETWORK || inUse.has(net.name)) continue;
    try {
      await removeNetwork(paths, net.name);
      removed.push(net.name);
    } catch (err) {
      // Attached meanwhile: not unused after all.
      if (errorKind(err) !== "failed_precondition") throw err;
    }
  }
  return removed;
}

/** A network by exact name, else by full id or unique id prefix; the error lists what exists. */
export function findNetwork(networks: readonly NetworkInfo[], nameOrId: string): NetworkInfo {
  const byName = networks.find((n) => n.name === nameOrId);
  if (byName) return byName;
  if (/^[0-9a-f]+$/.test(nameOrId)) {
    const byId = networks.filter((n) => n.id.startsWith(nameOrId));
    if (byId.length === 1) return byId[0]!;
    if (byId.length > 1) {
      throw invalidArgument(
        `Network id prefix "${nameOrId}" is ambiguous: ${byId.map((n) => n.name).join(", ")}`,
      );
    }
  }
  throw notFound(
    `Network "${nameOrId}" not found: the networks are ${networks.map((n) => n.name).join(", ")} ` +
      `(create it with berth network create ${nameOrId})`,
  );
}

function pseudoNetwork(name: string): NetworkInfo {
  return { name, id: "", file: "", driver: name === "none" ? "null" : name, subnets: [], labels: {} };
}

function networkInfo(list: NetworkConfigList): NetworkInfo {
  let top: Record<string, unknown> = {};
  try {
    top = JSON.parse(list.bytes) as Record<string, unknown>;
  } catch {
    // parseConfList read it; a .conf wrapped into a list has no extra keys anyway
  }
  const first = list.plugins[0]?.raw ?? {};
  const ipam = (first.ipam ?? {}) as Record<string, unknown>;
  const subnets = ipamSubnets(ipam);
  const labels = {
    ...stringRecord(top.nerdctlLabels),
    ...stringRecord(top.berthLabels),
  };
  const id = typeof top.nerdctlID === "string" && top.nerdctlID !== "" ? top.nerdctlID : sha256(list.name);
  const type = list.plugins[0]?.type ?? "";
  return {
    name: list.name,
    id,
    file: list.source,
    driver: type,
    bridge: type === "bridge" ? (typeof first.bridge === "string" ? first.bridge : "cni0") : undefined,
    subnets,
    labels,
    ipamDir: ipam.type === "host-local"
      ? `${
        typeof ipam.dataDir === "string" && ipam.dataDir ? ipam.dataDir : HOST_LOCAL_DEFAULT_DIR
      }/${list.name}`
      : undefined,
  };
}

/** host-local's `ranges` (or its older `subnet`), with gateways. */
function ipamSubnets(ipam: Record<string, unknown>): NetworkSubnet[] {
  const out: NetworkSubnet[] = [];
  const add = (r: Record<string, unknown>) => {
    if (typeof r.subnet !== "string") return;
    out.push(typeof r.gateway === "string" ? { subnet: r.subnet, gateway: r.gateway } : { subnet: r.subnet });
  };
  if (Array.isArray(ipam.ranges)) {
    for (const set of ipam.ranges) {
      if (Array.isArray(set)) {
        for (const r of set) if (r && typeof r === "object") add(r as Record<string, unknown>);
      }
    }
  }
  add(ipam);
  return out;
}

function stringRecord(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (typeof x === "string") out[k] = x;
  }
  return out;
}

async function writeNetwork(
  confDir: string,
  name: string,
  id: string,
  options: {
    subnet: string;
    gateway: string;
    bridge?: string;
    labels?: Readonly<Record<string, string>>;
    ipamDataDir?: string;
  },
): Promise<void> {
  const config = bridgeNetworkConfig(name, options);
  // nerdctl's keys too, so `nerdctl network ls` shows the same id and labels.
  const withId: Record<string, unknown> = { cniVersion: config.cniVersion, name, nerdctlID: id };
  if (options.labels && Object.keys(options.labels).length > 0) withId.nerdctlLabels = { ...options.labels };
  const text = `${JSON.stringify({ ...withId, ...config }, null, 2)}\n`;
  await Deno.mkdir(confDir, { recursive: true, mode: 0o755 });
  await writeFileAtomic(bridgeNetworkPath(confDir, name), text, { mode: 0o644 });
}

function checkSubnet(name: string, subnet: string): string {
  if (!isCidr(subnet) || !subnet.includes(".")) {
    throw invalidArgument(
      `Cannot create network "${name}": subnet "${subnet}" is not an IPv4 address/prefix`,
    );
  }
  const [base, bits] = parseCidr(subnet);
  // Normalised to the network address, as Docker does ("10.1.2.3/24" is 10.1.2.0/24).
  return `${formatIp(base & mask(bits))}/${bits}`;
}

/** The next 10.4.N.0/24 (N ≥ 1) that overlaps none of `used`. */
export function freeSubnet(used: readonly string[]): string | undefined {
  for (let n = 1; n <= 255; n++) {
    const candidate = `10.4.${n}.0/24`;
    if (!used.some((u) => overlaps(u, candidate))) return candidate;
  }
  return undefined;
}

/** The IPv4 prefixes this host routes or holds addresses in (its own interfaces, routes of every table). */
async function hostSubnets(): Promise<string[]> {
  const out: string[] = [];
  const json = async (args: string[]) => {
    const r = await outputClean("ip", { args: ["-j", ...args] });
    if (!r.success) return [];
    try {
      return JSON.parse(new TextDecoder().decode(r.stdout)) as Record<string, unknown>[];
    } catch {
      return [];
    }
  };
  for (const link of await json(["-4", "addr", "show"])) {
    for (const a of (link.addr_info ?? []) as { local?: string; prefixlen?: number }[]) {
      if (a.local && a.prefixlen !== undefined) out.push(`${a.local}/${a.prefixlen}`);
    }
  }
  for (const route of await json(["-4", "route", "show", "table", "all"])) {
    const dst = route.dst;
    if (
      typeof dst !== "string" || dst === "default" || route.type === "local" || route.type === "broadcast"
    ) {
      continue;
    }
    out.push(dst.includes("/") ? dst : `${dst}/32`);
  }
  // Loopback routes (127.0.0.0/8) cannot clash with 10.4/16; kept anyway for the overlap test's sake.
  return out.filter((s) => s.includes("."));
}

async function deleteLink(name: string): Promise<void> {
  const show = await outputClean("ip", { args: ["link", "show", name] });
  if (!show.success) return;
  const del = await outputClean("ip", { args: ["link", "del", name] });
  if (!del.success) {
    throw failedPrecondition(
      `Cannot delete bridge ${name}: ${new TextDecoder().decode(del.stderr).trim()}`,
    );
  }
}

function parseCidr(cidr: string): [number, number] {
  const [ip, bits] = cidr.split("/");
  return [parseIp(ip!), bits === undefined ? 32 : Number(bits)];
}

function parseIp(ip: string): number {
  return ip.split(".").reduce((acc, o) => acc * 256 + Number(o), 0) >>> 0;
}

function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function mask(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

/** Whether two IPv4 prefixes share an address. */
export function overlaps(a: string, b: string): boolean {
  const [ia, ba] = parseCidr(a);
  const [ib, bb] = parseCidr(b);
  const m = mask(Math.min(ba, bb));
  return ((ia & m) >>> 0) === ((ib & m) >>> 0);
}

function inSubnet(ip: string, subnet: string): boolean {
  return overlaps(`${ip}/32`, subnet);
}

function firstHost(subnet: string): string {
  const [base, bits] = parseCidr(subnet);
  return formatIp(((base & mask(bits)) + 1) >>> 0);
}

function sha256(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

function ignoreNotFound(err: unknown): void {
  if (!(err instanceof Deno.errors.NotFound)) throw err;
}
