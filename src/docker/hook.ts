/**
 * The OCI hook that gives Docker-style containers their networks, as nerdctl's pkg/ocihook does: runc
 * runs `berth internal oci-hook createRuntime` once the container's namespaces exist (before its process
 * starts) and `berth internal oci-hook postStop` when the container is deleted, each with the OCI state
 * ({id, pid, bundle, annotations}) on stdin. The hook needs no daemon: everything it needs is in the
 * annotations, which the run command copies from the container's labels.
 *
 * Annotations read (nerdctl's keys, and one of Berth's own):
 * - `nerdctl/networks`  JSON array of network names or ids; default ["bridge"]; "host"/"none": no CNI
 * - `nerdctl/ports`     JSON array of {"HostPort":n,"ContainerPort":n,"Protocol":"tcp","HostIP":"0.0.0.0"}
 * - `nerdctl/name`, `nerdctl/hostname`: the names other containers see in their /etc/hosts
 * - `nerdctl/namespace` the containerd namespace (default: the hook's BERTH_NAMESPACE)
 * - `berth/aliases`     JSON array of extra names on every network (compose's service name)
 *
 * CNI sees the container as `<namespace>-<id>` (nerdctl's "full id", so iptables comments and host-local
 * leases of two namespaces never clash), CNI_ARGS `IgnoreUnknown=1;NERDCTL_CNI_DHCP_HOSTNAME=<hostname>`,
 * interfaces eth0, eth1, … in the annotation's order, published ports (portMappings capability) on the
 * first network only.
 */
import { selfCommand } from "../base/self.ts";
import { outputClean, spawnClean } from "../base/spawn.ts";
import { CniManager, type NetworkRef, type PortMapping, type SetupResult } from "../core/cni/mod.ts";
import { ResultCache } from "../core/cni/cache.ts";
import { addressOf } from "../core/cni/result.ts";
import { createHash } from "node:crypto";
import { cniLockPath, withFileLock } from "./file_lock.ts";
import { HostsStore } from "./hosts.ts";
import { jsonLabel, LABELS, type PortLabel } from "./labels.ts";
import {
  DEFAULT_NETWORK,
  ensureDefaultNetwork,
  findNetwork,
  listNetworks,
  PSEUDO_NETWORKS,
} from "./networks.ts";
import type { DockerPaths } from "./paths.ts";

export type HookEvent = "createRuntime" | "postStop";

/** The OCI state runc gives a hook on stdin (the fields the hook reads). */
export interface HookState {
  readonly id: string;
  readonly pid?: number;
  readonly bundle?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** An OCI runtime-spec hook entry. */
export interface OciHook {
  readonly path: string;
  readonly args: string[];
  readonly env: string[];
  readonly timeout: number;
}

/** Seconds runc gives each hook: a CNI chain of four plugins plus iptables can take a while on a busy host. */
export const HOOK_TIMEOUT_S = 30;
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
  const namespace = a[LABELS.namespace] || defaultNamespace;
  const requested = parseJsonArray<string>(a, LABELS.networks, [DEFAULT_NETWORK]);
  const pseudo = requested.filter((n) => PSEUDO_NETWORKS.includes(n));
  if (pseudo.length > 0 && requested.length > 1) {
    throw new Error(
      `Network "${pseudo[0]}" cannot be combined with other networks (${requested.join(", ")})`,
    );
  }
  const networks = pseudo.length > 0 ? [] : requested.length > 0 ? requested : [DEFAULT_NETWORK];
  const ports = parseJsonArray<PortLabel>(a, LABELS.ports, []).map(portMapping);
  return {
    id: state.id,
    namespace,
    cniId: cniContainerId(namespace, state.id),
    networks,
    ports,
    name: a[LABELS.name] ?? "",
    hostname: a[LABELS.hostname] ?? "",
    aliases: jsonLabel<string[]>(a, LABELS.aliases, []).filter((x) => typeof x === "string" && x !== ""),
  };
}

function parseJsonArray<T>(a: Readonly<Record<string, string>>, key: string, fallback: T[]): T[] {
  const raw = a[key];
  if (raw === undefined || raw === "") return fallback;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    throw new Error(`Annotation ${key} is not JSON: ${(err as Error).message}`);
  }
  if (v === null) return fallback;
  if (!Array.isArray(v)) throw new Error(`Annotation ${key} is not a JSON array: ${raw}`);
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

/**
 * Runs the hook for `event`. createRuntime attaches the container and rejects when that fails (runc
 * then fails the create, and the user sees why); postStop detaches and never rejects: a container that
 * cannot be cleaned up completely must still be deletable, so its errors are logged to stderr instead.
 */
export async function ociHook(event: HookEvent, state: HookState, paths: DockerPaths): Promise<void> {
  if (event === "createRuntime") return await onCreateRuntime(state, paths);
  if (event === "postStop") {
    try {
      await onPostStop(state, paths);
    } catch (err) {
      logError(state.id, `postStop: ${(err as Error).message}`);
    }
    return;
  }
  throw new Error(`Unknown OCI hook event "${event}": use createRuntime or postStop`);
}

function logError(id: string, message: string): void {
  console.error(`berth oci-hook: container ${id}: ${message}`);
}

function managers(paths: DockerPaths): { first: CniManager; rest: CniManager } {
  const base = {
    confDir: paths.cniConfDir,
    binDirs: paths.cniBinDirs,
    cacheDir: `${paths.dataStore}/cni`,
    pluginTimeoutMs: PLUGIN_TIMEOUT_MS,
  };
  // Loopback once, with the first network; the others run without it.
  return { first: new CniManager(base), rest: new CniManager({ ...base, loopback: false }) };
}

async function onCreateRuntime(state: HookState, paths: DockerPaths): Promise<void> {
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
    const { first, rest } = managers(paths);
    // A second run for the same container (a retried hook, or a restart whose postStop never ran): undo
    // the old attachment first, through this netns, so the bridge plugin also deletes an eth0 still in it.
    if ((await new ResultCache(`${paths.dataStore}/cni`).list(plan.cniId)).length > 0) {
      await detach(plan, paths, netns, names).catch((err) =>
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
      await detach(plan, paths, netns, names).catch((e) => logError(plan.id, `cleanup: ${e.message}`));
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

async function onPostStop(state: HookState, paths: DockerPaths): Promise<void> {
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
      await detach(plan, paths, "", names);
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
  paths: DockerPaths,
  netns: string,
  names: readonly string[],
): Promise<void> {
  const { first } = managers(paths);
  const refs: NetworkRef[] = names.map((name, i) => ({ name, ifname: `eth${i}` }));
  let failure: unknown;
  try {
    await first.teardown(plan.cniId, netns, { networks: refs });
  } catch (err) {
    failure = err;
  }
  try {
    await removeIptablesRules(plan.cniId, names);
  } catch (err) {
    failure ??= err;
  }
  if (failure !== undefined) {
    throw failure instanceof Error ? failure : new Error(String(failure), { cause: failure });
  }
}

/** libcni's utils.FormatChainName: "CNI-" and 24 hex digits of SHA-512(network + container id). */
export function cniChainName(network: string, cniId: string): string {
  return `CNI-${createHash("sha512").update(network + cniId).digest("hex").slice(0, 24)}`;
}

/**
 * Deletes the iptables rules whose comment names `cniId` (`id: "<cniId>"`, the CNI plugins' comment
 * form) and then the container's own CNI chains, in one iptables-restore batch. Tried twice: another
 * container's plugins may change the ruleset between the save and the restore, and a batch with one
 * rule gone fails whole.
 */
export async function removeIptablesRules(cniId: string, networks: readonly string[]): Promise<void> {
  try {
    await removeRulesOnce(cniId, networks);
  } catch {
    await removeRulesOnce(cniId, networks);
  }
}

async function removeRulesOnce(cniId: string, networks: readonly string[]): Promise<void> {
  const save = await outputClean("iptables-save", { args: [], stdin: "null" });
  if (!save.success) throw new Error(`iptables-save failed: ${new TextDecoder().decode(save.stderr).trim()}`);
  const needle = `id: \\"${cniId}\\"`;
  const ownChains = new Set(networks.map((n) => cniChainName(n, cniId)));
  const script: string[] = [];
  let table = "";
  let chains: string[] = [];
  let dels: string[] = [];
  const flush = () => {
    const drop = chains.filter((c) => ownChains.has(c));
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
    else if (line.startsWith("-A ") && line.includes(needle)) dels.push(`-D${line.slice(2)}`);
    else if (line === "COMMIT") flush();
  }
  if (script.length === 0) return;
  const child = spawnClean("iptables-restore", {
    args: ["--noflush"],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  });
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(`${script.join("\n")}\n`));
  await w.close();
  const out = await child.output();
  if (!out.success) {
    throw new Error(
      `Cannot delete the iptables rules of ${cniId}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

/**
 * The OCI hook entries that run this executable's `internal oci-hook <event>`. Their environment places
 * the hook's state as the CLI's global flags would: BERTH_DATA_ROOT and BERTH_ADDRESS (the data store is
 * `<data-root>/<hash of address>`), BERTH_NAMESPACE, BERTH_CNI_PATH, BERTH_CNI_NETCONFPATH; PATH and HOME
 * for the plugins and iptables, DENO_DIR so a from-source run finds its module cache.
 */
export function networkHooks(paths: DockerPaths): { createRuntime: OciHook[]; poststop: OciHook[] } {
  const argv = selfCommand("internal", ["-A", "-q", "--no-prompt"]);
  const env = [
    `BERTH_DATA_ROOT=${paths.dataStore.slice(0, paths.dataStore.lastIndexOf("/")) || "/"}`,
    `BERTH_ADDRESS=${paths.address}`,
    `BERTH_NAMESPACE=${paths.namespace}`,
    `BERTH_CNI_PATH=${paths.cniBinDirs.join(":")}`,
    `BERTH_CNI_NETCONFPATH=${paths.cniConfDir}`,
    `PATH=${Deno.env.get("PATH") || "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}`,
    `HOME=${Deno.env.get("HOME") || "/root"}`,
  ];
  const denoDir = Deno.env.get("DENO_DIR");
  if (denoDir) env.push(`DENO_DIR=${denoDir}`);
  const hook = (event: HookEvent): OciHook => ({
    path: argv[0]!,
    args: [...argv, "oci-hook", event],
    env: [...env],
    timeout: HOOK_TIMEOUT_S,
  });
  // The spec's keys (runtime-spec config.md): `poststop` is all lower case, unlike the event's name.
  return { createRuntime: [hook("createRuntime")], poststop: [hook("postStop")] };
}
