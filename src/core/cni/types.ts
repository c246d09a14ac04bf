/**
 * The shapes the CNI runner speaks: network configurations as loaded, plugin results (CNI spec section 5)
 * and the capability arguments of CONVENTIONS.md. Field names are the wire's, so a value can be written
 * to a plugin's stdin or read from its stdout as it is.
 */

/** One plugin of a network configuration list, as read from the file (unknown keys kept). */
export interface PluginConfig {
  /** The plugin binary's name, looked up in the bin folders. */
  readonly type: string;
  /** Capabilities the plugin declares (`{"portMappings": true}`): which runtimeConfig keys it gets. */
  readonly capabilities: Readonly<Record<string, boolean>>;
  /** The plugin's object exactly as in the file; the request to the plugin is derived from it. */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** A network: a named list of plugins run in order on ADD and in reverse on DEL. */
export interface NetworkConfigList {
  readonly name: string;
  readonly cniVersion: string;
  readonly disableCheck: boolean;
  readonly plugins: readonly PluginConfig[];
  /** The file it came from; empty for built-in networks (loopback) and configs given as bytes. */
  readonly source: string;
  /** The list as JSON (a `.conf` wrapped into a list), which the result cache keeps for a later DEL. */
  readonly bytes: string;
}

export interface CniInterface {
  readonly name: string;
  readonly mac?: string;
  readonly mtu?: number;
  /** The netns path for an interface inside the container; absent for host interfaces. */
  readonly sandbox?: string;
  readonly socketPath?: string;
  readonly pciID?: string;
}

export interface CniIPConfig {
  /** An address with prefix length: "10.222.1.2/24". */
  readonly address: string;
  readonly gateway?: string;
  /** Index into the result's `interfaces`. */
  readonly interface?: number;
}

export interface CniRoute {
  readonly dst: string;
  readonly gw?: string;
  readonly mtu?: number;
  readonly advmss?: number;
  readonly priority?: number;
  readonly table?: number;
  readonly scope?: number;
}

export interface CniDNS {
  readonly nameservers?: readonly string[];
  readonly domain?: string;
  readonly search?: readonly string[];
  readonly options?: readonly string[];
}

/** A plugin's ADD result, normalised to the 1.0.0 shape whatever version the plugin spoke. */
export interface CniResult {
  /** The version the plugin answered in (or the config's, when it named none). */
  readonly cniVersion: string;
  readonly interfaces: readonly CniInterface[];
  readonly ips: readonly CniIPConfig[];
  readonly routes: readonly CniRoute[];
  readonly dns: CniDNS;
}

/** CONVENTIONS.md `portMappings`, as containerd's CRI fills it from a pod's port mappings. */
export interface PortMapping {
  readonly hostPort: number;
  readonly containerPort: number;
  /** "tcp", "udp" or "sctp" (lower case, as containerd passes it). */
  readonly protocol: string;
  /** Empty or absent: every host address. */
  readonly hostIP?: string;
}

/** CONVENTIONS.md `bandwidth`: rates in bits per second, bursts in bits. */
export interface BandWidth {
  readonly ingressRate?: number;
  readonly ingressBurst?: number;
  readonly egressRate?: number;
  readonly egressBurst?: number;
}

/** One range of CONVENTIONS.md `ipRanges` (host-local's `ranges` entries). */
export interface IPRange {
  readonly subnet: string;
  readonly rangeStart?: string;
  readonly rangeEnd?: string;
  readonly gateway?: string;
}

/** CONVENTIONS.md `dns` (note: `servers`/`searches`, unlike a result's `nameservers`/`search`). */
export interface DNSCapability {
  readonly servers?: readonly string[];
  readonly searches?: readonly string[];
  readonly options?: readonly string[];
}

/**
 * Capability arguments: each reaches only the plugins whose config declares that capability, under
 * `runtimeConfig`. Other well-known ones (`ips`, `mac`, `cgroupPath`, `io.kubernetes.cri.pod-annotations`)
 * pass through the index signature.
 */
export interface CapabilityArgs {
  readonly portMappings?: readonly PortMapping[];
  readonly bandwidth?: BandWidth;
  /** A list of range sets: one address is allocated from each set. */
  readonly ipRanges?: readonly (readonly IPRange[])[];
  readonly dns?: DNSCapability;
  readonly [capability: string]: unknown;
}

/** CNI_ARGS as ordered pairs (kept in order: containerd's and tests' expectations read left to right). */
export type CniArgs = readonly (readonly [key: string, value: string])[];
