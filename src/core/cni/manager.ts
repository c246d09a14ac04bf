/**
 * The CNI runner for Berth's two network users: the CRI plugin (one default network per pod, plus
 * loopback, as containerd's CRI does through go-cni) and the Docker-style CLI (networks chosen by name).
 * It loads the conf folder, attaches a container's netns to networks, caches each ADD's result for the
 * DEL, and reports readiness as the CRI's NetworkReady condition.
 */
import { BerthError, errorKind, failedPrecondition, invalidArgument, notFound } from "../../base/errors.ts";
import type { BasicLogger } from "../../base/log.ts";
import { type CachedAttachment, ResultCache } from "./cache.ts";
import {
  AddError,
  addList,
  type Attachment,
  type ChainOptions,
  checkList,
  delList,
  pluginVersions,
} from "./chain.ts";
import {
  type ConfigProblem,
  interfaceNameProblem,
  isValidName,
  loadConfDir,
  LOOPBACK_NETWORK,
  parseConfList,
} from "./config.ts";
import { findPlugin } from "./exec.ts";
import type {
  CapabilityArgs,
  CniArgs,
  CniDNS,
  CniInterface,
  CniResult,
  CniRoute,
  NetworkConfigList,
} from "./types.ts";
import { hasCheckAndCachedDel } from "./version.ts";

export const DEFAULT_CONF_DIR = "/etc/cni/net.d";
/** containerd's default first, then where Debian's containernetworking-plugins installs them. */
export const DEFAULT_BIN_DIRS: readonly string[] = ["/opt/cni/bin", "/usr/lib/cni"];

export interface CniManagerOptions {
  /** Where the network configs are (default /etc/cni/net.d). */
  readonly confDir?: string;
  /** Folders searched in order for plugin binaries (default /opt/cni/bin, then /usr/lib/cni). */
  readonly binDirs?: readonly string[];
  /** Root of the result cache (e.g. the CRI plugin's state folder); results go to `<cacheDir>/results`. */
  readonly cacheDir: string;
  /**
   * How many of the loaded networks a setup without `networks` attaches, in file order (containerd's
   * `max_conf_num`, default 1: the default network only); 0 attaches them all.
   */
  readonly maxConfNum?: number;
  /** Attach every container to loopback too, as interface "lo" (containerd's CRI; default true). */
  readonly loopback?: boolean;
  /** Interface names are this plus the network's position: eth0, eth1, … (default "eth"). */
  readonly ifPrefix?: string;
  /** Deadline of each plugin run (default 60 s). */
  readonly pluginTimeoutMs?: number;
  /** Told of every plugin process synchronously with its spawn (a shim's reaper must leave it to Deno). */
  readonly onSpawn?: (child: Deno.ChildProcess) => void;
  readonly logger?: BasicLogger;
}

/** The CRI's NetworkReady condition, and what was loaded. */
export interface NetworkStatus {
  readonly ready: boolean;
  /** "NetworkPluginNotReady" when not ready, as containerd reports it. */
  readonly reason: string;
  readonly message: string;
  /** The loaded networks by name, the default first. */
  readonly networks: readonly string[];
  /** Config files that did not load. */
  readonly problems: readonly ConfigProblem[];
}

/** A network to attach: by name, optionally with its interface name in the container. */
export type NetworkRef = string | { readonly name: string; readonly ifname?: string };

export interface AttachOptions {
  /** CNI_ARGS, in order; see podArgs() for containerd's. */
  readonly args?: CniArgs | Readonly<Record<string, string>>;
  /** Capability arguments, given to the plugins that declare them. */
  readonly capabilities?: CapabilityArgs;
  /** Interface name on the first network (default `<ifPrefix>0`, "eth0"). */
  readonly ifname?: string;
  /** Networks by name (default: the first `maxConfNum` loaded ones). */
  readonly networks?: readonly NetworkRef[];
  readonly signal?: AbortSignal;
}

/** An address given to the container, with the interface (by name) and network it belongs to. */
export interface SetupIP {
  /** With prefix length: "10.222.1.2/24". */
  readonly address: string;
  readonly gateway?: string;
  readonly interface: string;
  readonly network: string;
}

/** One network's ADD result as its plugins returned it. */
export interface AttachmentResult {
  readonly network: string;
  readonly ifname: string;
  readonly result: CniResult;
}

export interface SetupResult {
  /** Every interface the plugins reported (host-side ones have no sandbox). */
  readonly interfaces: readonly (CniInterface & { readonly network: string })[];
  readonly ips: readonly SetupIP[];
  readonly routes: readonly CniRoute[];
  /** One entry per network, in attach order. */
  readonly dns: readonly CniDNS[];
  readonly attachments: readonly AttachmentResult[];
}

/** containerd's CRI CNI_ARGS for a pod sandbox (toCNILabels), in a fixed order. */
export function podArgs(pod: { namespace: string; name: string; uid: string; sandboxId: string }): CniArgs {
  return [
    ["IgnoreUnknown", "1"],
    ["K8S_POD_NAMESPACE", pod.namespace],
    ["K8S_POD_NAME", pod.name],
    ["K8S_POD_INFRA_CONTAINER_ID", pod.sandboxId],
    ["K8S_POD_UID", pod.uid],
  ];
}

interface Planned {
  readonly list: NetworkConfigList;
  readonly ifname: string;
}

/** A network a setup got to: its result, or for the one that failed what its first plugins returned. */
interface Done {
  readonly step: Planned;
  readonly result?: CniResult;
  readonly partial?: CniResult;
}

const NOT_READY = "NetworkPluginNotReady";

export class CniManager {
  readonly confDir: string;
  readonly binDirs: readonly string[];
  readonly #cache: ResultCache;
  readonly #maxConfNum: number;
  readonly #loopback: boolean;
  readonly #ifPrefix: string;
  readonly #timeoutMs?: number;
  readonly #logger?: BasicLogger;
  readonly #onSpawn?: (child: Deno.ChildProcess) => void;
  #networks: readonly NetworkConfigList[] = [];
  #problems: readonly ConfigProblem[] = [];
  /** One operation per container at a time (spec section 3: no parallel operations for one container). */
  readonly #busy = new Map<string, Promise<unknown>>();

  constructor(options: CniManagerOptions) {
    this.confDir = options.confDir ?? DEFAULT_CONF_DIR;
    this.binDirs = options.binDirs ?? DEFAULT_BIN_DIRS;
    this.#cache = new ResultCache(options.cacheDir);
    this.#maxConfNum = options.maxConfNum ?? 1;
    this.#loopback = options.loopback ?? true;
    this.#ifPrefix = options.ifPrefix ?? "eth";
    this.#timeoutMs = options.pluginTimeoutMs;
    this.#logger = options.logger;
    this.#onSpawn = options.onSpawn;
  }

  /**
   * Reads the conf folder again. Setup and status call it themselves, so a config dropped in by a
   * network add-on is seen without a restart (containerd watches the folder for the same reason).
   */
  async load(): Promise<readonly NetworkConfigList[]> {
    const loaded = await loadConfDir(this.confDir);
    this.#networks = loaded.networks;
    this.#problems = loaded.problems;
    for (const p of loaded.problems) {
      this.#logger?.warn("CNI config skipped", { file: p.file, error: p.message });
    }
    return this.#networks;
  }

  /** The networks of the last load, the default first. */
  networks(): readonly NetworkConfigList[] {
    return this.#networks;
  }

  /**
   * The loaded configuration as go-cni's GetConfig reports it (what `crictl info` shows as cniconfig):
   * the networks an attachment covers by default, loopback first, with their interface names.
   */
  configResult(): Record<string, unknown> {
    const plan = this.#plan(undefined, "eth0", { skipMissing: true });
    return {
      PluginDirs: [...this.binDirs],
      PluginConfDir: this.confDir,
      PluginMaxConfNum: this.#maxConfNum,
      Prefix: this.#ifPrefix,
      Networks: plan.map(({ list, ifname }) => ({
        Config: {
          Name: list.name,
          CNIVersion: list.cniVersion,
          Plugins: list.plugins.map((p) => ({
            Network: {
              cniVersion: list.cniVersion,
              name: list.name,
              type: p.type,
              ...(Object.keys(p.capabilities).length > 0 ? { capabilities: p.capabilities } : {}),
              ipam: p.raw.ipam ?? {},
              dns: p.raw.dns ?? {},
            },
            Source: JSON.stringify(p.raw),
          })),
          Source: list.bytes,
        },
        IFName: ifname,
      })),
    };
  }

  /** NetworkReady for the CRI: a default network whose plugins are all installed. */
  async status(): Promise<NetworkStatus> {
    await this.load();
    const networks = this.#networks.map((n) => n.name);
    const problems = this.#problems;
    const notReady = (why: string): NetworkStatus => ({
      ready: false,
      reason: NOT_READY,
      message: `Network plugin returns error: cni plugin not initialized: ${why}`,
      networks,
      problems,
    });
    if (this.#networks.length === 0) {
      const skipped = problems.map((p) => `; skipped ${p.file}: ${p.message}`).join("");
      return notReady(`no network config found in ${this.confDir}${skipped}`);
    }
    for (const { list } of this.#plan(undefined, undefined)) {
      for (const plugin of list.plugins) {
        if (!(await findPlugin(plugin.type, this.binDirs))) {
          const from = list.source ? ` (${list.source})` : "";
          return notReady(
            `plugin "${plugin.type}" of network "${list.name}"${from} not found in ${this.binDirs.join(":")}`,
          );
        }
      }
    }
    return { ready: true, reason: "", message: "", networks, problems };
  }

  /**
   * Attaches the netns at `netns` to the networks (and loopback). When any plugin fails, what was added
   * is deleted again before the error is thrown, as containerd's RunPodSandbox does, so a failed setup
   * leaves no interface, address or rule behind.
   */
  async setup(containerId: string, netns: string, options: AttachOptions = {}): Promise<SetupResult> {
    const args = checkAttachment(containerId, options);
    if (netns === "") {
      throw invalidArgument(`Cannot set up network of container "${containerId}": no netns path`);
    }
    return await this.#serial(containerId, async () => {
      await this.load();
      if (this.#networks.length === 0) {
        throw failedPrecondition(
          `Cannot set up network of container "${containerId}": cni plugin not initialized: ` +
            `no network config found in ${this.confDir}`,
        );
      }
      const plan = this.#plan(options.networks, options.ifname);
      const done: Done[] = [];
      try {
        for (const step of plan) {
          const at = this.#attachment(containerId, netns, step.ifname, args, options.capabilities ?? {});
          await this.#add(step, at, options.signal, done);
        }
      } catch (err) {
        const base = { containerId, netns, args, capabilities: options.capabilities ?? {} };
        const cleanup = await this.#undo(done.reverse(), base);
        if (cleanup.length === 0) throw err;
        throw new BerthError(
          errorKind(err),
          `${(err as Error).message}; deleting what was added failed too: ${cleanup[0]!.message}`,
          { cause: err },
        );
      }
      return merge(
        done.map(({ step, result }) => ({ network: step.list.name, ifname: step.ifname, result: result! })),
      );
    });
  }

  /**
   * Detaches the container from every network it was attached to: the cached attachments (each with the
   * config, args and capabilities its ADD used, so a DEL after a restart or a config change undoes what
   * was done) and the requested networks that have no cache entry (an ADD interrupted before its result
   * was stored). Idempotent: nothing attached, or detached already, is success. All attachments are
   * tried; the first error is thrown after. Run it while the netns still exists (then remove that):
   * without it the bridge plugin cannot find the masquerade rules it made (containernetworking/plugins#810).
   */
  async teardown(containerId: string, netns: string, options: AttachOptions = {}): Promise<void> {
    const args = checkAttachment(containerId, options);
    return await this.#serial(containerId, async () => {
      await this.load();
      // A netns that is gone (host reboot, removed first) is passed as empty: the spec allows it for DEL.
      const ns = netns !== "" && (await exists(netns)) ? netns : "";
      const cached = await this.#cache.list(containerId);
      const errors: unknown[] = [];
      for (const { list, at, prev } of this.#teardownSteps(containerId, ns, cached, args, options)) {
        try {
          await delList(list, at, { ...this.#chainOptions(options.signal), prevResult: prev });
          await this.#cache.remove(list.name, containerId, at.ifname);
        } catch (err) {
          errors.push(err);
        }
      }
      if (errors.length > 0) throw errors[0];
    });
  }

  /**
   * The DELs of a teardown, in the reverse of setup's order: the requested networks last to first, then
   * cached attachments nobody requested, loopback last. (container, ifname) identifies an attachment
   * (spec section 3), so a cached one on an interface wins over the network now configured for it.
   */
  #teardownSteps(
    containerId: string,
    netns: string,
    cached: readonly CachedAttachment[],
    args: CniArgs,
    options: AttachOptions,
  ): { list: NetworkConfigList; at: Attachment; prev?: CniResult }[] {
    const left = [...cached];
    const steps: { list: NetworkConfigList; at: Attachment; prev?: CniResult }[] = [];
    const take = (configured: NetworkConfigList | undefined, ifname: string) => {
      const i = left.findIndex((c) => c.ifname === ifname);
      const entry = i >= 0 ? left.splice(i, 1)[0] : undefined;
      if (!entry) {
        // Never cached: an ADD cut short, or never run. DEL with today's config is harmless either way.
        if (configured) {
          steps.push({
            list: configured,
            at: this.#attachment(containerId, netns, ifname, args, options.capabilities ?? {}),
          });
        }
        return;
      }
      // The ADD's own config, args and capabilities: what was set up is what gets undone.
      const list = cachedList(entry.config, entry.network) ??
        this.#networks.find((n) => n.name === entry.network);
      if (!list) {
        this.#logger?.warn("CNI attachment has no usable config: cannot delete it", {
          container: containerId,
          network: entry.network,
        });
        return;
      }
      steps.push({
        list,
        at: this.#attachment(containerId, netns, ifname, entry.args, entry.capabilities),
        prev: entry.result,
      });
    };
    const planned = this.#plan(options.networks, options.ifname, { skipMissing: true });
    const isLoopback = (name: string) => name === LOOPBACK_NETWORK.name;
    for (const step of planned.filter((p) => !isLoopback(p.list.name)).reverse()) {
      take(step.list, step.ifname);
    }
    for (const entry of [...left].reverse()) if (!isLoopback(entry.network)) take(undefined, entry.ifname);
    for (const step of planned.filter((p) => isLoopback(p.list.name))) take(step.list, step.ifname);
    for (const entry of [...left]) take(undefined, entry.ifname);
    return steps;
  }

  /**
   * CHECK of every cached attachment of the container, with the parameters and result of its ADD.
   * Lists older than 0.4.0 (loopback's 0.3.1) have no CHECK and are skipped, as are those with
   * `disableCheck`. Throws not found when the container has no cached attachment.
   */
  async check(
    containerId: string,
    netns: string,
    options: Pick<AttachOptions, "signal"> = {},
  ): Promise<void> {
    checkAttachment(containerId, {});
    return await this.#serial(containerId, async () => {
      const cached = await this.#cache.list(containerId);
      if (cached.length === 0) throw notFound(`No CNI attachment of container "${containerId}" is cached`);
      for (const entry of cached) {
        const list = cachedList(entry.config, entry.network);
        if (!list) {
          throw notFound(
            `Cached CNI config of network "${entry.network}" for container "${containerId}" is unreadable`,
          );
        }
        if (list.disableCheck || !hasCheckAndCachedDel(list.cniVersion)) continue;
        if (!entry.result) {
          throw notFound(
            `Cached CNI result of network "${entry.network}" for container "${containerId}" is unreadable`,
          );
        }
        const at = this.#attachment(containerId, netns, entry.ifname, entry.args, entry.capabilities);
        await checkList(list, at, { ...this.#chainOptions(options.signal), prevResult: entry.result });
      }
    });
  }

  /** Asks each plugin of the networks (VERSION) whether it speaks the list's cniVersion. */
  async validate(options: Pick<AttachOptions, "networks" | "signal"> = {}): Promise<void> {
    await this.load();
    for (const { list } of this.#plan(options.networks, undefined)) {
      for (const plugin of list.plugins) {
        const versions = await pluginVersions(plugin.type, this.#chainOptions(options.signal));
        if (!versions.includes(list.cniVersion)) {
          throw invalidArgument(
            `CNI plugin ${plugin.type} of network "${list.name}" does not support cniVersion ${list.cniVersion} ` +
              `(it supports ${versions.join(", ")})`,
          );
        }
      }
    }
  }

  /** The networks an operation covers, with interface names: loopback first, then the requested ones. */
  #plan(
    refs: readonly NetworkRef[] | undefined,
    firstIfname: string | undefined,
    options: { skipMissing?: boolean } = {},
  ): Planned[] {
    const chosen: { list: NetworkConfigList; ifname?: string }[] = [];
    if (refs && refs.length > 0) {
      for (const ref of refs) {
        const name = typeof ref === "string" ? ref : ref.name;
        const list = this.#networks.find((n) => n.name === name);
        // Teardown of a network whose config is gone still has its cache entry to go by.
        if (!list && options.skipMissing) continue;
        if (!list) throw notFound(`CNI network "${name}" not found in ${this.confDir}`);
        chosen.push({ list, ifname: typeof ref === "string" ? undefined : ref.ifname });
      }
    } else {
      const n = this.#maxConfNum > 0 ? this.#maxConfNum : this.#networks.length;
      for (const list of this.#networks.slice(0, n)) chosen.push({ list });
    }
    const plan: Planned[] = this.#loopback ? [{ list: LOOPBACK_NETWORK, ifname: "lo" }] : [];
    chosen.forEach((c, i) => {
      const ifname = c.ifname ?? (i === 0 && firstIfname ? firstIfname : `${this.#ifPrefix}${i}`);
      const problem = interfaceNameProblem(ifname);
      if (problem) {
        throw invalidArgument(`Interface name ${JSON.stringify(ifname)} is not usable: ${problem}`);
      }
      plan.push({ list: c.list, ifname });
    });
    return plan;
  }

  #attachment(
    containerId: string,
    netns: string,
    ifname: string,
    args: CniArgs,
    capabilities: CapabilityArgs,
  ): Attachment {
    return { containerId, netns, ifname, args, capabilities };
  }

  #chainOptions(signal: AbortSignal | undefined): ChainOptions {
    return {
      binDirs: this.binDirs,
      logger: this.#logger,
      signal,
      timeoutMs: this.#timeoutMs,
      onSpawn: this.#onSpawn,
    };
  }

  /** ADD of one network, cached; `done` records it, or on failure what its successful plugins returned. */
  async #add(step: Planned, at: Attachment, signal: AbortSignal | undefined, done: Done[]): Promise<void> {
    let result: CniResult;
    try {
      result = await addList(step.list, at, this.#chainOptions(signal));
    } catch (err) {
      done.push({ step, partial: err instanceof AddError ? err.partial : undefined });
      throw err instanceof AddError ? err.cause : err;
    }
    done.push({ step, result });
    await this.#cache.write({
      containerId: at.containerId,
      network: step.list.name,
      ifname: step.ifname,
      netns: at.netns,
      config: step.list.bytes,
      args: at.args,
      capabilities: at.capabilities,
      result,
    });
  }

  /** Deletes what a failed setup added; resolves to the errors of that cleanup (also logged). */
  async #undo(done: readonly Done[], base: Omit<Attachment, "ifname">): Promise<Error[]> {
    const { containerId } = base;
    const errors: Error[] = [];
    for (const { step, result, partial } of done) {
      const at: Attachment = { ...base, ifname: step.ifname };
      try {
        // A failed ADD has no final result; what its successful plugins returned is the best prevResult.
        // No caller signal: a cancelled setup must still clean up (containerd uses a fresh context too).
        await delList(step.list, at, { ...this.#chainOptions(undefined), prevResult: result ?? partial });
        await this.#cache.remove(step.list.name, containerId, step.ifname);
      } catch (err) {
        this.#logger?.warn("CNI cleanup after a failed setup failed", {
          container: containerId,
          network: step.list.name,
          error: (err as Error).message,
        });
        errors.push(err as Error);
      }
    }
    return errors;
  }

  async #serial<T>(containerId: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#busy.get(containerId) ?? Promise.resolve();
    const mine = before.catch(() => {}).then(fn);
    const settled = mine.catch(() => {});
    this.#busy.set(containerId, settled);
    try {
      return await mine;
    } finally {
      if (this.#busy.get(containerId) === settled) this.#busy.delete(containerId);
    }
  }
}

/** The ADD's config from the cache; undefined when it does not parse (then the loaded one is used). */
function cachedList(config: string, network: string): NetworkConfigList | undefined {
  if (config === "") return undefined;
  try {
    const list = parseConfList(config, "");
    return list.name === network ? list : undefined;
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Validates the id and args of an attachment; returns the args as ordered pairs. */
function checkAttachment(containerId: string, options: Pick<AttachOptions, "args">): CniArgs {
  if (!isValidName(containerId)) {
    throw invalidArgument(
      `Container id ${
        JSON.stringify(containerId)
      } is not usable by CNI: it must match [a-zA-Z0-9][a-zA-Z0-9_.-]*`,
    );
  }
  const raw = options.args ?? [];
  const pairs: CniArgs = Array.isArray(raw) ? raw as CniArgs : Object.entries(raw);
  for (const [k, v] of pairs) {
    if (k === "" || /[=;]/.test(k) || v.includes(";")) {
      throw invalidArgument(
        `CNI argument ${JSON.stringify(`${k}=${v}`)} is not usable: keys need no = or ;, values no ;`,
      );
    }
  }
  return pairs;
}

/** The results of all networks as one, the way go-cni's createResult folds them. */
function merge(attachments: AttachmentResult[]): SetupResult {
  const interfaces: (CniInterface & { network: string })[] = [];
  const ips: SetupIP[] = [];
  const routes: CniRoute[] = [];
  const dns: CniDNS[] = [];
  for (const a of attachments) {
    for (const i of a.result.interfaces) interfaces.push({ ...i, network: a.network });
    for (const ip of a.result.ips) {
      // An IP without an interface index belongs to the attachment's own interface (go-cni does the same).
      const name = ip.interface !== undefined ? a.result.interfaces[ip.interface]!.name : a.ifname;
      ips.push({ address: ip.address, gateway: ip.gateway, interface: name, network: a.network });
    }
    routes.push(...a.result.routes);
    dns.push(a.result.dns);
  }
  return { interfaces, ips, routes, dns, attachments };
}
