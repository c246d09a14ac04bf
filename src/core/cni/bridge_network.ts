/**
 * The conflist of a named bridge network, for `berth network create`: nerdctl's defaults (bridge with
 * a gateway, masquerade and hairpin, host-local addresses, portmap for published ports, firewall to
 * keep bridges apart, tuning), written where the CNI runner loads it.
 */
import { sha256HexSync } from "../../base/hash.ts";
import { writeFileAtomic } from "../../base/atomic_write.ts";
import { alreadyExists, invalidArgument } from "../../base/errors.ts";
import { interfaceNameProblem, isValidName, parseConfList } from "./config.ts";
import { isCidr } from "./result.ts";
import { CURRENT_VERSION } from "./version.ts";

export interface BridgeNetworkOptions {
  /** The network's addresses, e.g. "10.222.1.0/24"; the caller picks one no other network uses. */
  readonly subnet: string;
  /** Default: host-local's choice, the subnet's first address. */
  readonly gateway?: string;
  /** Default "br-" and 12 hex digits of the name's SHA-256 (nerdctl names its bridges br-<id>). */
  readonly bridge?: string;
  /** Masquerade traffic leaving the subnet (default true). */
  readonly ipMasq?: boolean;
  /** Drop traffic from other CNI bridges (firewall plugin, ingressPolicy "same-bridge"; default true). */
  readonly isolate?: boolean;
  readonly mtu?: number;
  /** host-local's store of allocated addresses (default its own, /var/lib/cni/networks). */
  readonly ipamDataDir?: string;
  /** Kept in the file as `berthLabels`; plugins ignore unknown keys. */
  readonly labels?: Readonly<Record<string, string>>;
}

/** Where writeBridgeNetwork() puts the network `name`. */
export function bridgeNetworkPath(confDir: string, name: string): string {
  return `${confDir}/berth-${name}.conflist`;
}

/** The bridge interface name for a network name when none is given. */
export function defaultBridgeName(name: string): string {
  return `br-${sha256HexSync(name).slice(0, 12)}`;
}

/** The conflist object of the bridge network `name`. */
export function bridgeNetworkConfig(name: string, options: BridgeNetworkOptions): Record<string, unknown> {
  if (!isValidName(name)) {
    throw invalidArgument(
      `Network name ${JSON.stringify(name)} is not usable: it must match [a-zA-Z0-9][a-zA-Z0-9_.-]*`,
    );
  }
  if (!isCidr(options.subnet)) {
    throw invalidArgument(
      `Subnet ${JSON.stringify(options.subnet)} of network "${name}" is not an address/prefix`,
    );
  }
  const bridge = options.bridge ?? defaultBridgeName(name);
  const problem = interfaceNameProblem(bridge);
  if (problem) {
    throw invalidArgument(
      `Bridge name ${JSON.stringify(bridge)} of network "${name}" is not usable: ${problem}`,
    );
  }
  const range: Record<string, string> = { subnet: options.subnet };
  if (options.gateway) range.gateway = options.gateway;
  const ipam: Record<string, unknown> = {
    type: "host-local",
    ranges: [[range]],
    routes: [{ dst: "0.0.0.0/0" }],
  };
  if (options.ipamDataDir) ipam.dataDir = options.ipamDataDir;
  const bridgePlugin: Record<string, unknown> = {
    type: "bridge",
    bridge,
    isGateway: true,
    ipMasq: options.ipMasq ?? true,
    hairpinMode: true,
    ipam,
  };
  if (options.mtu !== undefined) bridgePlugin.mtu = options.mtu;
  const plugins: Record<string, unknown>[] = [
    bridgePlugin,
    { type: "portmap", capabilities: { portMappings: true } },
  ];
  if (options.isolate ?? true) plugins.push({ type: "firewall", ingressPolicy: "same-bridge" });
  plugins.push({ type: "tuning" });
  const config: Record<string, unknown> = { cniVersion: CURRENT_VERSION, name };
  if (options.labels && Object.keys(options.labels).length > 0) config.berthLabels = { ...options.labels };
  config.plugins = plugins;
  return config;
}

/**
 * Writes the bridge network `name` to `<confDir>/berth-<name>.conflist` (atomically: the runner may be
 * loading the folder at that moment). Refuses to replace an existing network file.
 */
export async function writeBridgeNetwork(
  confDir: string,
  name: string,
  options: BridgeNetworkOptions,
): Promise<string> {
  const text = `${JSON.stringify(bridgeNetworkConfig(name, options), null, 2)}\n`;
  const path = bridgeNetworkPath(confDir, name);
  parseConfList(text, path); // what the runner will read back must load
  await Deno.mkdir(confDir, { recursive: true, mode: 0o755 });
  try {
    await Deno.lstat(path);
    throw alreadyExists(`Network "${name}" already exists: ${path}`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  await writeFileAtomic(path, text, { mode: 0o644 });
  return path;
}
