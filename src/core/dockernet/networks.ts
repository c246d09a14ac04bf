/**
 * The networks of Docker-style containers as the conf folder holds them (nerdctl's model): `host` and
 * `none` built in, every conflist a network, and the default network `bridge` (bridge `berth0`,
 * 10.4.0.0/24) written on first use. The read side and the default network live here, below the shim,
 * which attaches containers in process; creating and removing networks is src/docker/networks.ts.
 */
import { sha256HexSync } from "../../base/hash.ts";
import { writeFileAtomic } from "../../base/atomic_write.ts";
import { invalidArgument, notFound } from "../../base/errors.ts";
import { bridgeNetworkConfig, bridgeNetworkPath } from "../cni/bridge_network.ts";
import { loadConfDir } from "../cni/config.ts";
import type { NetworkConfigList } from "../cni/types.ts";
import { cniLockPath, withFileLock } from "./file_lock.ts";
import type { NetworkPaths } from "./paths.ts";

/** The part of the paths the conf folder's readers need. */
export type ConfPaths = Pick<NetworkPaths, "cniConfDir">;

export const DEFAULT_NETWORK = "bridge";
export const DEFAULT_BRIDGE = "berth0";
export const DEFAULT_SUBNET = "10.4.0.0/24";
export const DEFAULT_GATEWAY = "10.4.0.1";
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

/** The networks: `host` and `none` first, then the conflists of the conf folder in file order. */
export async function listNetworks(paths: ConfPaths): Promise<NetworkInfo[]> {
  const { networks } = await loadConfDir(paths.cniConfDir);
  return [...PSEUDO_NETWORKS.map(pseudoNetwork), ...networks.map(networkInfo)];
}

/**
 * Writes the default network `bridge` (bridge `berth0`, 10.4.0.0/24) when the conf folder has none;
 * resolves to it either way.
 */
export async function ensureDefaultNetwork(paths: ConfPaths): Promise<NetworkInfo> {
  const found = (await listNetworks(paths)).find((n) => n.name === DEFAULT_NETWORK);
  if (found) return found;
  return await withFileLock(cniLockPath(paths.cniConfDir), async () => {
    const again = (await listNetworks(paths)).find((n) => n.name === DEFAULT_NETWORK);
    if (again) return again;
    await writeNetwork(paths.cniConfDir, DEFAULT_NETWORK, networkId(DEFAULT_NETWORK), {
      subnet: DEFAULT_SUBNET,
      gateway: DEFAULT_GATEWAY,
      bridge: DEFAULT_BRIDGE,
    });
    return findNetwork(await listNetworks(paths), DEFAULT_NETWORK);
  });
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
  const id = typeof top.nerdctlID === "string" && top.nerdctlID !== "" ? top.nerdctlID : networkId(list.name);
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

export async function writeNetwork(
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

/** A network's id when its conflist carries none: the SHA-256 of its name. */
export function networkId(name: string): string {
  return sha256HexSync(name);
}
