/**
 * Docker-style networks over the CNI conf folder, as nerdctl keeps them: each bridge network is one
 * conflist (`berth-<name>.conflist`, nerdctl's plugin chain) with its id (`nerdctlID`) and labels in
 * it, so there is no other database to go stale. `host` and `none` are built-in pseudo-networks with no
 * file; `bridge` is the default network (bridge `berth0`, 10.4.0.0/24), written on first use.
 * Which containers are on a network is known from the hosts store (src/core/dockernet/hosts.ts).
 */
import { alreadyExists, errorKind, failedPrecondition, invalidArgument } from "../base/errors.ts";
import { outputClean } from "../base/spawn.ts";
import { isCidr } from "../core/cni/result.ts";
import { cniLockPath, withFileLock } from "../core/dockernet/file_lock.ts";
import { attachedContainers } from "../core/dockernet/hosts.ts";
import { removeBridgeIsolationRules } from "../core/dockernet/attach.ts";
import {
  DEFAULT_NETWORK,
  findNetwork,
  listNetworks,
  type NetworkInfo,
  PSEUDO_NETWORKS,
  writeNetwork,
} from "../core/dockernet/networks.ts";
import type { DockerPaths } from "./paths.ts";

export {
  DEFAULT_BRIDGE,
  DEFAULT_NETWORK,
  DEFAULT_SUBNET,
  ensureDefaultNetwork,
  findNetwork,
  listNetworks,
  type NetworkInfo,
  type NetworkSubnet,
  PSEUDO_NETWORKS,
} from "../core/dockernet/networks.ts";

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
    if (net.bridge) {
      await deleteLink(net.bridge);
      // The firewall plugin's per-bridge rules are never removed by a DEL: they go with the network.
      await removeBridgeIsolationRules(net.bridge);
    }
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

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

function ignoreNotFound(err: unknown): void {
  if (!(err instanceof Deno.errors.NotFound)) throw err;
}
