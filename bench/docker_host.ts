/**
 * The host side of the docker group: the CNI network `ctr run --cni` needs where containerd 1.6's ctr
 * looks for it (go-cni's defaults, fixed in ctr: the first conf file of /etc/cni/net.d, plugins in
 * /opt/cni/bin), put there for the group's run and taken away again, and the iptables rules, bridges
 * and result caches a run leaves, removed so the host ends as it began.
 */

import { bridgeNetworkConfig } from "../src/core/cni/mod.ts";
import { must } from "./exec.ts";

/** Where ctr's go-cni loads networks and plugins from (go-cni DefaultNetDir, DefaultCNIDir). */
export const CTR_CONF_DIR = "/etc/cni/net.d";
export const CTR_BIN_DIR = "/opt/cni/bin";
/** Debian's containernetworking-plugins. */
export const DEBIAN_CNI_DIR = "/usr/lib/cni";
/** libcni's result cache, which ctr (through go-cni) writes. */
export const LIBCNI_STATE = "/var/lib/cni";
const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";

/** A bridge network of the benchmark's own. */
export interface BenchNetwork {
  readonly name: string;
  readonly bridge: string;
  /** `10.232.N.0/24` */
  readonly subnet: string;
  /** host-local's dataDir: leases under `<ipamDir>/<name>/`. */
  readonly ipamDir: string;
}

/** The network's conflist: the plugin chain Berth gives its own networks (bridge, portmap, firewall, tuning). */
export function benchConflist(net: BenchNetwork): string {
  const config = bridgeNetworkConfig(net.name, {
    subnet: net.subnet,
    bridge: net.bridge,
    ipamDataDir: net.ipamDir,
  });
  return `${JSON.stringify(config, null, 2)}\n`;
}

/**
 * The `count` third octets under 10.232.0.0/16 that no route of the host mentions (the CRI group uses
 * 10.231, the tests 10.250 and Berth's own networks 10.4).
 */
export function freeOctets(routes: string, count: number): number[] {
  const out: number[] = [];
  for (let n = 10; n < 250 && out.length < count; n++) {
    if (!routes.includes(`10.232.${n}.`)) out.push(n);
  }
  if (out.length < count) throw new Error(`No ${count} free subnets under 10.232.0.0/16`);
  return out;
}

/** The address host-local leased to `containerId`: its store holds one file per address, the id first. */
export function leasedAddress(
  leases: readonly { readonly name: string; readonly text: string }[],
  containerId: string,
): string | undefined {
  return leases.find((l) =>
    /^\d+\.\d+\.\d+\.\d+$/.test(l.name) && l.text.split(/\r?\n/)[0]?.trim() === containerId
  )?.name;
}

/** Reads host-local's leases of `network` under `ipamDir` and finds the container's address. */
export async function leaseOf(ipamDir: string, network: string, containerId: string): Promise<string> {
  const dir = `${ipamDir}/${network}`;
  const leases: { name: string; text: string }[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile) leases.push({ name: e.name, text: await Deno.readTextFile(`${dir}/${e.name}`) });
  }
  const ip = leasedAddress(leases, containerId);
  if (!ip) throw new Error(`Container ${containerId} has no address lease in ${dir}`);
  return ip;
}

/** `TASK PID STATUS` rows of `ctr tasks ls` as task id → pid. */
export function taskPids(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n").slice(1)) {
    const [id, pid] = line.trim().split(/\s+/);
    if (id && pid && /^\d+$/.test(pid)) out.set(id, Number(pid));
  }
  return out;
}

interface Table {
  readonly chains: string[];
  readonly rules: string[];
}

function parseSave(text: string): Map<string, Table> {
  const tables = new Map<string, Table>();
  let current: Table | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("*")) tables.set(line.slice(1), current = { chains: [], rules: [] });
    else if (line.startsWith(":") && current) current.chains.push(line.slice(1).split(" ")[0]!);
    else if (line.startsWith("-A ") && current) current.rules.push(line);
  }
  return tables;
}

function jumpTarget(rule: string): string | undefined {
  return / -j (\S+)/.exec(rule)?.[1];
}

/**
 * `iptables-restore --noflush` scripts, one per table, that take back what a run added: the rules that
 * match `ours` (its container ids, its bridges) and were not in `before`, then the CNI-* (and podman's
 * NETAVARK*) chains that did
 * not exist before and are left empty (or hold only jumps to such chains), with the jumps to them.
 * Chains and rules that were there before are never touched.
 */
export function iptablesUndo(before: string, now: string, ours: RegExp): Map<string, string> {
  const old = parseSave(before);
  const scripts = new Map<string, string>();
  for (const [name, table] of parseSave(now)) {
    const was = old.get(name) ?? { chains: [], rules: [] };
    const mine = table.rules.filter((r) => ours.test(r) && !was.rules.includes(r));
    const left = table.rules.filter((r) => !mine.includes(r));
    const fresh = table.chains.filter((c) => /^(CNI-|NETAVARK)/.test(c) && !was.chains.includes(c));
    const drop = new Set<string>();
    for (let grew = true; grew;) {
      grew = false;
      for (const c of fresh) {
        if (drop.has(c)) continue;
        const body = left.filter((r) => r.startsWith(`-A ${c} `));
        if (body.every((r) => drop.has(jumpTarget(r) ?? ""))) {
          drop.add(c);
          grew = true;
        }
      }
    }
    const inDropped = (r: string) => drop.has(r.split(" ")[1]!);
    const jumps = left.filter((r) => !inDropped(r) && drop.has(jumpTarget(r) ?? ""));
    const lines = [
      ...mine.filter((r) => !inDropped(r)).map((r) => `-D${r.slice(2)}`),
      ...jumps.map((r) => `-D${r.slice(2)}`),
      ...[...drop].map((c) => `-F ${c}`),
      ...[...drop].map((c) => `-X ${c}`),
    ];
    if (lines.length > 0) scripts.set(name, [`*${name}`, ...lines, "COMMIT", ""].join("\n"));
  }
  return scripts;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

async function save(): Promise<string> {
  return (await must(["iptables-save"])).stdout;
}

/** What the host had before the group ran, and what the group added to it. */
export class HostChanges {
  readonly #iptables: string;
  readonly #ipForward: string;
  readonly #made: string[] = [];
  readonly #bridges = new Set<string>();
  #confFile: string | undefined;

  private constructor(iptables: string, ipForward: string) {
    this.#iptables = iptables;
    this.#ipForward = ipForward;
  }

  static async record(): Promise<HostChanges> {
    return new HostChanges(await save(), (await Deno.readTextFile(IP_FORWARD)).trim());
  }

  /** A bridge the run's networks make; removed by restore(). */
  bridge(name: string): void {
    this.#bridges.add(name);
  }

  /**
   * Puts `net`'s conflist first in ctr's conf folder and links every Debian plugin missing from ctr's
   * plugin folder; creates the folders when absent. All of it is undone by restore().
   */
  async installCtrNetwork(net: BenchNetwork): Promise<void> {
    this.bridge(net.bridge);
    for (const dir of ["/etc/cni", CTR_CONF_DIR, "/opt/cni", CTR_BIN_DIR]) {
      if (!await exists(dir)) {
        await Deno.mkdir(dir, { mode: 0o755 });
        this.#made.push(dir);
      }
    }
    for await (const e of Deno.readDir(DEBIAN_CNI_DIR)) {
      const link = `${CTR_BIN_DIR}/${e.name}`;
      if (await exists(link)) continue;
      await Deno.symlink(`${DEBIAN_CNI_DIR}/${e.name}`, link);
      this.#made.push(link);
    }
    // go-cni takes the first file in sorted order as the default network.
    const file = `${CTR_CONF_DIR}/00-${net.name}.conflist`;
    await Deno.writeTextFile(file, benchConflist(net), { createNew: true, mode: 0o644 });
    this.#confFile = file;
  }

  /**
   * Puts the host back: the conflist first (so no other CNI user picks it up while the rest goes), the
   * bridges, the iptables rules naming a container id that starts with `idPrefix` or one of the bridges,
   * libcni's cached results of those containers, the plugin links and folders, ip_forward.
   */
  async restore(idPrefix: string): Promise<void> {
    const ours = new RegExp([idPrefix, ...this.#bridges].map(escapeRegExp).join("|"));
    if (this.#confFile) await Deno.remove(this.#confFile).catch(() => {});
    this.#confFile = undefined;
    for (const b of this.#bridges) {
      if (await exists(`/sys/class/net/${b}`)) await must(["ip", "link", "del", b]).catch(() => {});
    }
    for (const [, script] of iptablesUndo(this.#iptables, await save(), ours)) {
      const child = new Deno.Command("iptables-restore", {
        args: ["-w", "--noflush"],
        stdin: "piped",
        stdout: "null",
        stderr: "null",
      }).spawn();
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(script));
      await w.close();
      await child.status;
    }
    // libcni's cached results of the run's containers (a DEL that did not run leaves them).
    const cached = await Array.fromAsync(Deno.readDir(`${LIBCNI_STATE}/results`)).catch(() => []);
    for (const e of cached) {
      if (ours.test(e.name)) await Deno.remove(`${LIBCNI_STATE}/results/${e.name}`).catch(() => {});
    }
    // Links first, then folders deepest first; a folder someone else filled meanwhile stays.
    for (const p of this.#made.reverse()) await Deno.remove(p).catch(() => {});
    this.#made.length = 0;
    if ((await Deno.readTextFile(IP_FORWARD)).trim() !== this.#ipForward) {
      await Deno.writeTextFile(IP_FORWARD, `${this.#ipForward}\n`);
    }
  }
}
