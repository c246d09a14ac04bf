/**
 * Attaches a Docker-style container to its networks and detaches it again, as nerdctl's OCI hook does
 * (pkg/ocihook): everything needed is in the container's annotations, which the run command copies from
 * its labels. Two callers: the `berth internal oci-hook` process that runc runs (a foreign shim such as
 * containerd-shim-runc-v2), and Berth's own shim, which does the same in process after `runc create`
 * and after `runc delete` instead of starting a hook process for each.
 *
 * Annotations read (nerdctl's keys, and one of Berth's own):
 * - `nerdctl/networks`  JSON array of network names or ids; default ["bridge"]; "host"/"none": no CNI
 * - `nerdctl/ports`     JSON array of {"HostPort":n,"ContainerPort":n,"Protocol":"tcp","HostIP":"0.0.0.0"}
 * - `nerdctl/name`, `nerdctl/hostname`: the names other containers see in their /etc/hosts
 * - `nerdctl/namespace` the containerd namespace (default: the paths' namespace)
 * - `berth/aliases`     JSON array of extra names on every network (compose's service name)
 *
 * CNI sees the container as `<namespace>-<id>` (nerdctl's "full id", so iptables comments and host-local
 * leases of two namespaces never clash), CNI_ARGS `IgnoreUnknown=1;NERDCTL_CNI_DHCP_HOSTNAME=<hostname>`,
 * interfaces eth0, eth1, … in the annotation's order, published ports (portMappings capability) on the
 * first network only.
 */
import { sha512HexSync } from "../../base/hash.ts";
import { spawnClean } from "../../base/spawn.ts";
import { ResultCache } from "../cni/cache.ts";
import { CniManager, type NetworkRef, type SetupResult } from "../cni/manager.ts";
import { addressOf } from "../cni/result.ts";
import type { PortMapping } from "../cni/types.ts";
import { NETWORK_ANNOTATIONS, type PortLabel } from "./annotations.ts";
import { cniLockPath, withFileLock } from "./file_lock.ts";
import { HostsStore } from "./hosts.ts";
import {
  DEFAULT_NETWORK,
  ensureDefaultNetwork,
  findNetwork,
  listNetworks,
  PSEUDO_NETWORKS,
} from "./networks.ts";
import type { NetworkPaths } from "./paths.ts";

export interface AttachOptions {
  /**
   * Told of every process started (CNI plugins, iptables) synchronously with its spawn: a shim's reaper
   * must leave those to Deno.
   */
  readonly onSpawn?: (child: Deno.ChildProcess) => void;
  /** Where the problems of a detach go (it never fails); default stderr. */
  readonly log?: (message: string) => void;
}

/** The OCI state runc gives a hook on stdin (the fields the hook reads). */
export interface HookState {
  readonly id: string;
  readonly pid?: number;
  readonly bundle?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** Each plugin run's own deadline, well inside the hook's. */
const PLUGIN_TIMEOUT_MS = 10_000;

/** What a container asks of the network, read from its annotations. */
export interface HookPlan {
  readonly id: string;
  readonly namespace: string;
  /** `<namespace>-<id>`: the container id CNI sees. */
  readonly cniId: string;
  /** CNI networks in interface order; empty for host/none. */
  readonly networks: readonly string[];
  readonly ports: readonly PortMapping[];
  readonly name: string;
  readonly hostname: string;
  readonly aliases: readonly string[];
}

/** The container id CNI sees, nerdctl's `<namespace>-<id>`. */
export function cniContainerId(namespace: string, id: string): string {
  return `${namespace}-${id}`;
}

/** Reads the annotations; throws when they are malformed. */
export function hookPlan(state: HookState, defaultNamespace: string): HookPlan {
  if (!state.id) throw new Error("OCI state has no container id");
  const a = state.annotations ?? {};
  const namespace = a[NETWORK_ANNOTATIONS.namespace] || defaultNamespace;
  const requested = parseJsonArray<string>(a, NETWORK_ANNOTATIONS.networks, [DEFAULT_NETWORK]);
  const pseudo = requested.filter((n) => PSEUDO_NETWORKS.includes(n));
  if (pseudo.length > 0 && requested.length > 1) {
    throw new Error(
      `Network "${pseudo[0]}" cannot be combined with other networks (${requested.join(", ")})`,
    );
  }
  const networks = pseudo.length > 0 ? [] : requested.length > 0 ? requested : [DEFAULT_NETWORK];
  const ports = parseJsonArray<PortLabel>(a, NETWORK_ANNOTATIONS.ports, []).map(portMapping);
  return {
    id: state.id,
    namespace,
    cniId: cniContainerId(namespace, state.id),
    networks,
    ports,
    name: a[NETWORK_ANNOTATIONS.name] ?? "",
    hostname: a[NETWORK_ANNOTATIONS.hostname] ?? "",
    aliases: parseJsonArray<string>(a, NETWORK_ANNOTATIONS.aliases, [], false).filter((x) =>
      typeof x === "string" && x !== ""
    ),
  };
}

/** A JSON array annotation; `strict`: malformed ones throw, else they count as absent. */
function parseJsonArray<T>(
  a: Readonly<Record<string, string>>,
  key: string,
  fallback: T[],
  strict = true,
): T[] {
  const raw = a[key];
  if (raw === undefined || raw === "") return fallback;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    if (!strict) return fallback;
    throw new Error(`Annotation ${key} is not JSON: ${(err as Error).message}`);
  }
  if (v === null) return fallback;
  if (!Array.isArray(v)) {
    if (!strict) return fallback;
    throw new Error(`Annotation ${key} is not a JSON array: ${raw}`);
  }
  return v as T[];
}

function portMapping(p: PortLabel): PortMapping {
  const hostPort = Number(p.HostPort);
  const containerPort = Number(p.ContainerPort);
  if (
    !Number.isInteger(hostPort) || !Number.isInteger(containerPort) || hostPort <= 0 || containerPort <= 0
  ) {
    throw new Error(`Port mapping ${JSON.stringify(p)} needs a HostPort and a ContainerPort`);
  }
  const protocol = (p.Protocol || "tcp").toLowerCase();
  // An unspecified host address means every address: portmap then matches no destination at all.
  const hostIP = p.HostIP && p.HostIP !== "0.0.0.0" && p.HostIP !== "::" ? p.HostIP : undefined;
  return hostIP ? { hostPort, containerPort, protocol, hostIP } : { hostPort, containerPort, protocol };
}

function managers(paths: NetworkPaths, options: AttachOptions): { first: CniManager; rest: CniManager } {
  const base = {
    onSpawn: options.onSpawn,
    confDir: paths.cniConfDir,
    binDirs: paths.cniBinDirs,
    cacheDir: `${paths.dataStore}/cni`,
    pluginTimeoutMs: PLUGIN_TIMEOUT_MS,
  };
  // Loopback once, with the first network; the others run without it.
  return { first: new CniManager(base), rest: new CniManager({ ...base, loopback: false }) };
}

/**
 * Attaches the container (its netns is `/proc/<pid>/ns/net`) to the networks its annotations name and
 * records its addresses in the hosts store. Rejects with the CNI error when that fails, after undoing
 * what was done: no veth, rule or lease is left.
 */
export async function attachNetworks(
  state: HookState,
  paths: NetworkPaths,
  options: AttachOptions = {},
): Promise<void> {
  const logError = errorLog(options);
  const plan = hookPlan(state, paths.namespace);
  if (plan.networks.length === 0) return;
  if (!state.pid) {
    throw new Error(`Cannot attach container ${plan.id} to its networks: the OCI state has no pid`);
  }
  const netns = `/proc/${state.pid}/ns/net`;
  // Before the lock: ensureDefaultNetwork takes it itself (flock does not nest across descriptors).
  if (plan.networks.includes(DEFAULT_NETWORK)) await ensureDefaultNetwork(paths);
  await withFileLock(cniLockPath(paths.cniConfDir), async () => {
    const known = await listNetworks(paths);
    const names = plan.networks.map((n) => findNetwork(known, n).name);
    const { first, rest } = managers(paths, options);
    // A second run for the same container (a retried hook, or a restart whose postStop never ran): undo
    // the old attachment first, through this netns, so the bridge plugin also deletes an eth0 still in it.
    if ((await new ResultCache(`${paths.dataStore}/cni`).list(plan.cniId)).length > 0) {
      await detach(plan, paths, netns, names, options).catch((err) =>
        logError(plan.id, `stale attachment: ${err.message}`)
      );
    }
    const args: [string, string][] = [["IgnoreUnknown", "1"]];
    if (plan.hostname && !/[;=]/.test(plan.hostname)) args.push(["NERDCTL_CNI_DHCP_HOSTNAME", plan.hostname]);
    try {
      const results: SetupResult[] = [
        await first.setup(plan.cniId, netns, {
          networks: [{ name: names[0]!, ifname: "eth0" }],
          capabilities: plan.ports.length > 0 ? { portMappings: plan.ports } : {},
          args,
        }),
      ];
      if (names.length > 1) {
        const refs: NetworkRef[] = names.slice(1).map((name, i) => ({ name, ifname: `eth${i + 1}` }));
        results.push(await rest.setup(plan.cniId, netns, { networks: refs, args }));
      }
      await new HostsStore(paths.dataStore, plan.namespace).attach({
        id: plan.id,
        hostname: plan.hostname,
        name: plan.name,
        aliases: plan.aliases,
        networks: addresses(names, results),
      });
    } catch (err) {
      await detach(plan, paths, netns, names, options).catch((e) =>
        logError(plan.id, `cleanup: ${e.message}`)
      );
      throw new Error(
        `Cannot attach container ${plan.id} to network${names.length > 1 ? "s" : ""} ${names.join(", ")}: ` +
          (err as Error).message,
        { cause: err },
      );
    }
  });
}

/** Each network's first address of the container, IPv4 before IPv6. */
function addresses(names: readonly string[], results: readonly SetupResult[]): Record<string, string> {
  const out: Record<string, string> = {};
  const ips = results.flatMap((r) => r.ips).filter((ip) => ip.interface.startsWith("eth"));
  for (const name of names) {
    const mine = ips.filter((ip) => ip.network === name).map((ip) => addressOf(ip.address));
    const v4 = mine.find((ip) => ip.includes("."));
    if (v4 ?? mine[0]) out[name] = (v4 ?? mine[0])!;
  }
  return out;
}

/**
 * Detaches the container from its networks (CNI DEL from the cached results) and forgets its addresses.
 * Never rejects: a container that cannot be cleaned up completely must still be deletable, so problems
 * go to the log.
 */
export async function detachNetworks(
  state: HookState,
  paths: NetworkPaths,
  options: AttachOptions = {},
): Promise<void> {
  const logError = errorLog(options);
  try {
    await detachAll(state, paths, options, logError);
  } catch (err) {
    logError(state.id, `postStop: ${(err as Error).message}`);
  }
}

async function detachAll(
  state: HookState,
  paths: NetworkPaths,
  options: AttachOptions,
  logError: (id: string, message: string) => void,
): Promise<void> {
  const plan = hookPlan(state, paths.namespace);
  if (plan.networks.length === 0) return;
  await withFileLock(cniLockPath(paths.cniConfDir), async () => {
    let names = [...plan.networks];
    try {
      const known = await listNetworks(paths);
      names = plan.networks.map((n) => {
        try {
          return findNetwork(known, n).name;
        } catch {
          return n; // removed since: its cached config still says how to delete it
        }
      });
    } catch {
      // The conf folder is unreadable: the cache alone drives the DEL.
    }
    try {
      await detach(plan, paths, "", names, options);
    } finally {
      await new HostsStore(paths.dataStore, plan.namespace).detach(plan.id).catch((err) =>
        logError(plan.id, `hosts: ${err.message}`)
      );
    }
  });
}

/**
 * CNI DEL of every attachment of the container (cached ones with the ADD's config and arguments), then
 * the masquerade rules the bridge plugin cannot find once the netns is gone: plugins 1.1's DEL without
 * a netns releases the address but skips its iptables teardown (containernetworking/plugins#810), so,
 * as nerdctl does, the rules whose comment names this container and its `CNI-<hash>` chains go here.
 */
async function detach(
  plan: HookPlan,
  paths: NetworkPaths,
  netns: string,
  names: readonly string[],
  options: AttachOptions,
): Promise<void> {
  const { first } = managers(paths, options);
  const refs: NetworkRef[] = names.map((name, i) => ({ name, ifname: `eth${i}` }));
  let failure: unknown;
  try {
    await first.teardown(plan.cniId, netns, { networks: refs });
  } catch (err) {
    failure = err;
  }
  try {
    await removeIptablesRules(plan.cniId, names, options);
  } catch (err) {
    failure ??= err;
  }
  if (failure !== undefined) {
    throw failure instanceof Error ? failure : new Error(String(failure), { cause: failure });
  }
}

/** libcni's utils.FormatChainName: "CNI-" and 24 hex digits of SHA-512(network + container id). */
export function cniChainName(network: string, cniId: string): string {
  return `CNI-${sha512HexSync(network + cniId).slice(0, 24)}`;
}

/**
 * Deletes the iptables rules whose comment names `cniId` (`id: "<cniId>"`, the CNI plugins' comment
 * form) and then the container's own CNI chains, in one iptables-restore batch. Tried twice: another
 * container's plugins may change the ruleset between the save and the restore, and a batch with one
 * rule gone fails whole.
 */
export async function removeIptablesRules(
  cniId: string,
  networks: readonly string[],
  options: AttachOptions = {},
): Promise<void> {
  const needle = `id: \\"${cniId}\\"`;
  const rules: RuleSelection = {
    what: `the iptables rules of ${cniId}`,
    matches: (line) => line.includes(needle),
    ownChains: new Set(networks.map((n) => cniChainName(n, cniId))),
  };
  try {
    await removeRulesOnce(rules, options);
  } catch {
    await removeRulesOnce(rules, options);
  }
}

/**
 * Deletes the firewall plugin's isolation rules of a bridge (`-i BRIDGE` in CNI-ISOLATION-STAGE-1,
 * `-o BRIDGE` in CNI-ISOLATION-STAGE-2): the plugin adds them per bridge and no DEL ever removes them, so
 * they outlive the network unless its removal takes them. Tried twice, as removeIptablesRules().
 */
export async function removeBridgeIsolationRules(bridge: string, options: AttachOptions = {}): Promise<void> {
  const stage1 = `-A CNI-ISOLATION-STAGE-1 -i ${bridge} `;
  const stage2 = `-A CNI-ISOLATION-STAGE-2 -o ${bridge} `;
  const rules: RuleSelection = {
    what: `the isolation rules of bridge ${bridge}`,
    matches: (line) => line.startsWith(stage1) || line.startsWith(stage2),
    ownChains: new Set(),
  };
  try {
    await removeRulesOnce(rules, options);
  } catch {
    await removeRulesOnce(rules, options);
  }
}

/** Which rules of an iptables-save listing to delete, and which chains then to drop. */
interface RuleSelection {
  readonly what: string;
  readonly matches: (line: string) => boolean;
  readonly ownChains: ReadonlySet<string>;
}

async function removeRulesOnce(rules: RuleSelection, options: AttachOptions): Promise<void> {
  const saver = spawnClean("iptables-save", { stdin: "null", stdout: "piped", stderr: "piped" });
  options.onSpawn?.(saver);
  const save = await saver.output();
  if (!save.success) throw new Error(`iptables-save failed: ${new TextDecoder().decode(save.stderr).trim()}`);
  const script: string[] = [];
  let table = "";
  let chains: string[] = [];
  let dels: string[] = [];
  const flush = () => {
    const drop = chains.filter((c) => rules.ownChains.has(c));
    if (dels.length > 0 || drop.length > 0) {
      script.push(
        `*${table}`,
        ...dels,
        ...drop.map((c) => `-F ${c}`),
        ...drop.map((c) => `-X ${c}`),
        "COMMIT",
      );
    }
  };
  for (const line of new TextDecoder().decode(save.stdout).split("\n")) {
    if (line.startsWith("*")) {
      table = line.slice(1);
      chains = [];
      dels = [];
    } else if (line.startsWith(":")) chains.push(line.slice(1).split(" ")[0]!);
    else if (line.startsWith("-A ") && rules.matches(line)) dels.push(`-D${line.slice(2)}`);
    else if (line === "COMMIT") flush();
  }
  if (script.length === 0) return;
  const child = spawnClean("iptables-restore", {
    args: ["--noflush"],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  });
  options.onSpawn?.(child);
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(`${script.join("\n")}\n`));
  await w.close();
  const out = await child.output();
  if (!out.success) {
    throw new Error(`Cannot delete ${rules.what}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

function errorLog(options: AttachOptions): (id: string, message: string) => void {
  const log = options.log ?? ((m: string) => console.error(m));
  return (id, message) => log(`berth: container ${id}: ${message}`);
}
