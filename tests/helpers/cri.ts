/**
 * What a CRI acceptance run needs on the host: a CNI network of its own (a test-owned bridge on a
 * test-only subnet), the `[plugins."io.containerd.grpc.v1.cri"]` config that containerd and Berth both
 * read, a CRI runtime on private folders (Debian's containerd as the reference, or Berth's daemon), and
 * the check that a run left nothing on the host.
 */
import { startDaemon, testDaemonConfig } from "./daemon.ts";

export type CriTarget = "containerd" | "berth";

export const CNI_BIN_DIR = "/usr/lib/cni";

export interface CriNetwork {
  /** The CNI network name (the conflist's `name`; host-local keeps its leases under it). */
  readonly name: string;
  /** The Linux bridge the bridge plugin makes (and never removes: cleanupHost() does). */
  readonly bridge: string;
  /** `10.231.N.0/24` */
  readonly subnet: string;
  /** The bridge's address, the pods' gateway. */
  readonly gateway: string;
  /** The folder holding the conflist: the runtime's CNI conf_dir. */
  readonly confDir: string;
  /** host-local's dataDir: one file per leased address under `<ipamDir>/<name>/`. */
  readonly ipamDir: string;
}

/** The third octets tried for a /24 under 10.231.0.0/16, a range nothing on this machine routes. */
const SUBNET_OCTETS = [77, 78, 79, 80, 81, 82, 83, 84];

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { ok: o.success, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

export interface CriNetworkOptions {
  /** The network's name; "berth-critest" by default. cleanupHost() removes iptables rules that name it. */
  readonly name?: string;
  /** Third octets to try for the /24 under 10.231.0.0/16; 77–84 by default. */
  readonly octets?: readonly number[];
}

/**
 * Writes a conflist for a bridge of this run's own (bridge + host-local + portmap) on a /24 that no route
 * on the host uses yet. The loopback plugin is not in it: a CRI runtime brings lo up with a network of
 * its own (containerd's "cni-loopback", which TestStatus expects to be listed first). Users that may run
 * beside the CRI suite (the benchmark) pass a name and octets of their own, so that neither cleans up
 * the other's rules or takes its subnet.
 */
export async function makeCriNetwork(dir: string, options: CriNetworkOptions = {}): Promise<CriNetwork> {
  const routes = (await run("ip", ["-4", "route", "show", "table", "all"])).out;
  const octet = (options.octets ?? SUBNET_OCTETS).find((n) => !routes.includes(`10.231.${n}.`));
  if (octet === undefined) throw new Error(`No free test subnet under 10.231.0.0/16:\n${routes}`);
  const suffix = crypto.randomUUID().slice(0, 6);
  const network: CriNetwork = {
    name: options.name ?? "berth-critest",
    bridge: `bcri${suffix}`,
    subnet: `10.231.${octet}.0/24`,
    gateway: `10.231.${octet}.1`,
    confDir: `${dir}/cni`,
    ipamDir: `${dir}/ipam`,
  };
  await Deno.mkdir(network.confDir, { recursive: true });
  await Deno.mkdir(network.ipamDir, { recursive: true });
  const conflist = {
    cniVersion: "1.0.0",
    name: network.name,
    plugins: [
      {
        type: "bridge",
        bridge: network.bridge,
        isGateway: true,
        // No masquerading: pods talk to each other and to the host, never beyond.
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          dataDir: network.ipamDir,
          ranges: [[{ subnet: network.subnet, gateway: network.gateway }]],
        },
      },
      // snat lets a hostPort answer connections to 127.0.0.1.
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
    ],
  };
  await Deno.writeTextFile(
    `${network.confDir}/10-${network.name}.conflist`,
    JSON.stringify(conflist, null, 2),
  );
  return network;
}

export interface CriPluginOptions {
  /** `127.0.0.1:PORT/berth/pause:v1` */
  readonly sandboxImage: string;
  /** `127.0.0.1:PORT`: the plain-HTTP test registry, reached through a mirror entry. */
  readonly registryHost: string;
  readonly network: CriNetwork;
  /** runc's state folder (the runc runtime's `Root` option). */
  readonly runcRoot: string;
}

/**
 * The `[plugins."io.containerd.grpc.v1.cri"]` section, in containerd 1.6's keys: the sandbox image, the
 * CNI folders, an `http://` mirror for the test registry (containerd would otherwise try HTTPS), and the
 * streaming server on 127.0.0.1 (port 0: the kernel picks one, and the URLs name it), OOM scores no
 * lower than the daemon's, and runc's state in a folder of the run's own.
 */
export function criPluginToml(o: CriPluginOptions): string {
  const cri = `plugins."io.containerd.grpc.v1.cri"`;
  return [
    `[${cri}]`,
    `  sandbox_image = ${JSON.stringify(o.sandboxImage)}`,
    `  stream_server_address = "127.0.0.1"`,
    `  stream_server_port = "0"`,
    `  enable_tls_streaming = false`,
    // Without CAP_SYS_RESOURCE (as on these machines, and in nested or rootless setups) runc cannot set
    // the sandbox's oom_score_adj of -998: this clamps it to the daemon's own.
    `  restrict_oom_score_adj = true`,
    // runc keeps its state under the run's folder, not in /run/containerd/runc/k8s.io.
    `[${cri}.containerd.runtimes.runc]`,
    `  runtime_type = "io.containerd.runc.v2"`,
    `[${cri}.containerd.runtimes.runc.options]`,
    `  Root = ${JSON.stringify(o.runcRoot)}`,
    `[${cri}.cni]`,
    `  bin_dir = ${JSON.stringify(CNI_BIN_DIR)}`,
    `  conf_dir = ${JSON.stringify(o.network.confDir)}`,
    `  max_conf_num = 1`,
    `[${cri}.registry.mirrors.${JSON.stringify(o.registryHost)}]`,
    `  endpoint = [${JSON.stringify(`http://${o.registryHost}`)}]`,
    "",
  ].join("\n");
}

export interface CriRuntime {
  readonly target: CriTarget;
  /** The unix socket serving CRI (and containerd's API). */
  readonly address: string;
  /** The runtime's root folder (ImageFsInfo reports the snapshotter's folder under it). */
  readonly root: string;
  /** The runtime's log so far. */
  logs(): Promise<string>;
  /** Stops the runtime (SIGTERM, SIGKILL after 10 s, or `signal` straight away). */
  stop(signal?: Deno.Signal): Promise<void>;
}

export interface StartCriRuntimeOptions {
  /** The daemon's folder: its socket, `root/`, `state/` and config go there. */
  readonly dir: string;
  /** The `[plugins."io.containerd.grpc.v1.cri"]` config (criPluginToml()). */
  readonly plugin: string;
}

/** Starts the target's daemon on `<dir>/root`, `<dir>/state`; call again with the same dir to restart it. */
export async function startCriRuntime(
  target: CriTarget,
  options: StartCriRuntimeOptions,
): Promise<CriRuntime> {
  const { dir, plugin } = options;
  return target === "containerd" ? await startContainerd(dir, plugin) : await startBerth(dir, plugin);
}

async function startBerth(dir: string, plugin: string): Promise<CriRuntime> {
  const daemon = await startDaemon({ dir, config: `${testDaemonConfig}${plugin}` });
  return {
    target: "berth",
    address: daemon.address,
    root: daemon.root,
    logs: () => Promise.resolve(daemon.logs()),
    async stop(signal) {
      if (signal) {
        await daemon.stop(signal);
        return;
      }
      const timer = setTimeout(() => daemon.process.kill("SIGKILL"), 10_000);
      await daemon.stop().finally(() => clearTimeout(timer));
    },
  };
}

const CONTAINERD = "/usr/bin/containerd";

async function startContainerd(dir: string, plugin: string): Promise<CriRuntime> {
  const address = `${dir}/containerd.sock`;
  const root = `${dir}/root`;
  const configPath = `${dir}/containerd.toml`;
  await Deno.writeTextFile(
    configPath,
    [
      "version = 2",
      `root = ${JSON.stringify(root)}`,
      `state = ${JSON.stringify(`${dir}/state`)}`,
      "[grpc]",
      `  address = ${JSON.stringify(address)}`,
      "[ttrpc]",
      `  address = ${JSON.stringify(`${address}.ttrpc`)}`,
      "[debug]",
      `  address = ""`,
      `  level = "debug"`,
      "[metrics]",
      `  address = ""`,
      // containerd would otherwise make /opt/containerd on the host.
      `[plugins."io.containerd.internal.v1.opt"]`,
      `  path = ${JSON.stringify(`${dir}/opt`)}`,
      plugin,
    ].join("\n"),
  );
  const logPath = `${dir}/containerd.log`;
  const log = await Deno.open(logPath, { write: true, create: true, append: true });
  const booted = (await Deno.readTextFile(logPath)).split("successfully booted").length;
  const child = new Deno.Command(CONTAINERD, {
    args: ["--config", configPath],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Into a file, so that a chatty daemon never blocks on a full pipe.
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) await log.write(chunk);
  };
  const drains = Promise.all([pump(child.stdout), pump(child.stderr)]).catch(() => {}).finally(() =>
    log.close()
  );
  let exited = false;
  const status = child.status.finally(() => exited = true);
  const stop = async (signal?: Deno.Signal) => {
    if (!exited) {
      try {
        child.kill(signal ?? "SIGTERM");
      } catch { /* gone */ }
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 10_000);
    await status.finally(() => clearTimeout(timer));
    await drains;
  };
  const deadline = Date.now() + 30_000;
  // "containerd successfully booted" comes once every plugin, CRI included, is registered.
  while ((await Deno.readTextFile(logPath)).split("successfully booted").length === booted) {
    if (exited || Date.now() > deadline) {
      await stop("SIGKILL");
      const text = await Deno.readTextFile(logPath);
      throw new Error(`containerd did not boot on ${address}:\n${text.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { target: "containerd", address, root, logs: () => Deno.readTextFile(logPath), stop };
}

/** What the host had before a run, so that cleanupHost() only undoes the run's own changes. */
export interface HostState {
  readonly ipForward: string;
  readonly natChains: readonly string[];
  readonly cniStateExisted: boolean;
  readonly netnsDirExisted: boolean;
}

const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";
const CNI_STATE = "/var/lib/cni";
/** Where containerd's CRI (and `ip netns`) mount network namespaces. */
const NETNS_DIR = "/var/run/netns";
/** The chains portmap makes once and never removes. */
const PORTMAP_CHAINS = ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"];

export async function hostState(): Promise<HostState> {
  return {
    ipForward: (await Deno.readTextFile(IP_FORWARD)).trim(),
    natChains: natChains(await iptablesSave("nat")),
    cniStateExisted: await exists(CNI_STATE),
    netnsDirExisted: await exists(NETNS_DIR),
  };
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** The entries of a folder; none when it does not exist. */
async function names(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
  } catch {
    return [];
  }
}

async function iptablesSave(table: string): Promise<string> {
  const r = await run("iptables-save", ["-t", table]);
  if (!r.ok) throw new Error(`iptables-save -t ${table} failed: ${r.out}`);
  return r.out;
}

/** The iptables rules of this run: they name its network, its subnet or one of its sandboxes. */
async function runRules(
  traces: RunTraces,
  rec: Map<string, string[]>,
): Promise<{ table: string; line: string }[]> {
  const sandboxes = rec.get("sandbox") ?? [];
  const prefix = traces.network.subnet.slice(0, traces.network.subnet.lastIndexOf(".") + 1);
  const out: { table: string; line: string }[] = [];
  for (const table of ["nat", "filter", "mangle"]) {
    for (const line of (await iptablesSave(table)).split("\n")) {
      if (
        line.startsWith("-A") &&
        (line.includes(traces.network.name) || line.includes(prefix) ||
          sandboxes.some((id) => line.includes(id)))
      ) out.push({ table, line });
    }
  }
  return out;
}

function natChains(save: string): string[] {
  return save.split("\n").filter((l) => l.startsWith(":")).map((l) => l.slice(1).split(" ")[0]!);
}

export interface RunTraces {
  /** The run's temp folder: daemon folders, pod logs, mount sources. */
  readonly dir: string;
  readonly network: CriNetwork;
  /** The cgroup (cgroupfs path) the pods were put under. */
  readonly cgroupParent: string;
  /** The file the Go scenarios recorded what they made on the host in ("netns /var/run/netns/…"). */
  readonly recordPath: string;
}

async function recorded(path: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const text = await Deno.readTextFile(path).catch(() => "");
  for (const line of text.split("\n")) {
    const [kind, ...rest] = line.split(" ");
    if (!kind || rest.length === 0) continue;
    out.set(kind, [...(out.get(kind) ?? []), rest.join(" ")]);
  }
  return out;
}

async function cgroupRoots(cgroupParent: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir("/sys/fs/cgroup")) {
    const path = `/sys/fs/cgroup/${e.name}${cgroupParent}`;
    if (e.isDirectory && await exists(path)) out.push(path);
  }
  if (await exists(`/sys/fs/cgroup/cgroup.controllers`) && await exists(`/sys/fs/cgroup${cgroupParent}`)) {
    out.push(`/sys/fs/cgroup${cgroupParent}`);
  }
  return out;
}

/** Folders under root, deepest first, with their depth below it. */
async function walkDirs(root: string, depth = 0): Promise<{ path: string; depth: number }[]> {
  const out: { path: string; depth: number }[] = [];
  for await (const e of Deno.readDir(root)) {
    if (e.isDirectory) out.push(...await walkDirs(`${root}/${e.name}`, depth + 1));
  }
  out.push({ path: root, depth });
  return out;
}

/**
 * What a run left on the host that the runtime should have removed: processes and mounts of its
 * folders, the pods' network namespaces, veths, address leases, iptables rules and CNI result caches,
 * and container cgroups. Call it once the runtime has stopped. The bridge itself, the pods' parent
 * cgroups and portmap's shared chains are left by design (the kubelet or an admin owns them):
 * cleanupHost() removes those.
 */
export async function findLeftovers(traces: RunTraces): Promise<string[]> {
  const found: string[] = [];
  const rec = await recorded(traces.recordPath);
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
    if (cmdline.includes(traces.dir)) {
      found.push(`process ${e.name}: ${cmdline.replaceAll("\0", " ").trim()}`);
    }
  }
  for (const root of await cgroupRoots(traces.cgroupParent)) {
    for (const { path, depth } of await walkDirs(root)) {
      const procs = (await Deno.readTextFile(`${path}/cgroup.procs`).catch(() => "")).trim();
      if (procs) found.push(`processes ${procs.split("\n").join(",")} in cgroup ${path}`);
      // <parent>/pod<uid> is the pod's (the kubelet's) cgroup; a container's own is one below.
      if (depth >= 2) found.push(`container cgroup ${path}`);
    }
  }
  // The cgroups the scenarios saw pods and containers in, wherever the runtime put them.
  const hierarchies = [
    "",
    ...(await names("/sys/fs/cgroup")).map((n) => `/${n}`),
  ];
  for (const path of rec.get("cgroup") ?? []) {
    for (const h of hierarchies) {
      const dir = `/sys/fs/cgroup${h}${path}`;
      if (await exists(`${dir}/cgroup.procs`)) found.push(`cgroup ${dir}`);
    }
  }
  const netns = rec.get("netns") ?? [];
  const resolvedNetns = await Promise.all(netns.map(async (p) => {
    const dir = await Deno.realPath(p.slice(0, p.lastIndexOf("/"))).catch(() => "");
    return `${dir}${p.slice(p.lastIndexOf("/"))}`;
  }));
  const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n").map((l) =>
    l.split(" ")[4] ?? ""
  );
  for (const m of mounts) {
    if (m.startsWith(traces.dir) || netns.includes(m) || resolvedNetns.includes(m)) found.push(`mount ${m}`);
  }
  for (const p of netns) if (await exists(p)) found.push(`network namespace ${p}`);
  for (const v of rec.get("veth") ?? []) {
    if (await exists(`/sys/class/net/${v}`)) found.push(`veth ${v}`);
  }
  for (const name of await names(`/sys/class/net/${traces.network.bridge}/brif`)) {
    found.push(`bridge port ${name} on ${traces.network.bridge}`);
  }
  for (const { table, line } of await runRules(traces, rec)) found.push(`iptables -t ${table} ${line}`);
  const leases = `${traces.network.ipamDir}/${traces.network.name}`;
  for (const name of await names(leases)) {
    if (name !== "lock" && !name.startsWith("last_reserved_ip")) {
      found.push(`address lease ${leases}/${name}`);
    }
  }
  const sandboxes = rec.get("sandbox") ?? [];
  for (const name of await names(`${CNI_STATE}/results`)) {
    if (sandboxes.some((id) => name.includes(id))) {
      found.push(`CNI result cache ${CNI_STATE}/results/${name}`);
    }
  }
  return found;
}

/**
 * Puts the host back as it was before the run: what the runtime leaves by design (the bridge, the pods'
 * parent cgroups, portmap's chains, /var/lib/cni and /var/run/netns when the run made them, ip_forward the bridge
 * plugin turned on), and, should a run have failed, the leftovers findLeftovers() lists: the run's
 * processes (by pid), mounts, network namespaces and iptables rules.
 */
export async function cleanupHost(traces: RunTraces, before: HostState): Promise<void> {
  const rec = await recorded(traces.recordPath);
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
    if (cmdline.includes(traces.dir)) {
      try {
        Deno.kill(Number(e.name), "SIGKILL");
      } catch { /* gone */ }
    }
  }
  const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n").map((l) =>
    l.split(" ")[4] ?? ""
  );
  for (const m of mounts.filter((m) => m.startsWith(traces.dir)).reverse()) await run("umount", ["-l", m]);
  for (const p of rec.get("netns") ?? []) {
    if (!await exists(p)) continue;
    await run("umount", ["-l", p]);
    await Deno.remove(p).catch(() => {});
  }
  for (const { table, line } of await runRules(traces, rec)) {
    await run("sh", ["-c", `iptables -w -t ${table} -D ${line.slice(3)}`]);
  }
  if (await exists(`/sys/class/net/${traces.network.bridge}`)) {
    await run("ip", ["link", "del", traces.network.bridge]);
  }
  await removePortmapChains(before);
  for (const root of await cgroupRoots(traces.cgroupParent)) {
    for (const { path } of await walkDirs(root)) await Deno.remove(path).catch(() => {});
  }
  if ((await Deno.readTextFile(IP_FORWARD)).trim() !== before.ipForward) {
    await Deno.writeTextFile(IP_FORWARD, before.ipForward);
  }
  const netnsMounted = mounts.includes(await Deno.realPath(NETNS_DIR).catch(() => NETNS_DIR));
  if (!before.netnsDirExisted && !netnsMounted) await Deno.remove(NETNS_DIR).catch(() => {});
  if (!before.cniStateExisted) {
    // Only empty folders go: another user of CNI may have started meanwhile.
    await Deno.remove(`${CNI_STATE}/results`).catch(() => {});
    await Deno.remove(CNI_STATE).catch(() => {});
  }
}

/** portmap's chains, when this run made them and no one has a port mapping in them now. */
async function removePortmapChains(before: HostState): Promise<void> {
  const save = await iptablesSave("nat");
  const made = PORTMAP_CHAINS.filter((c) => natChains(save).includes(c) && !before.natChains.includes(c));
  if (made.length === 0 || save.split("\n").some((l) => l.startsWith("-A CNI-HOSTPORT-DNAT "))) return;
  for (const line of save.split("\n")) {
    if (line.startsWith("-A") && made.some((c) => line.endsWith(`-j ${c}`))) {
      await run("sh", ["-c", `iptables -w -t nat -D ${line.slice(3)}`]);
    }
  }
  for (const c of made) {
    await run("iptables", ["-w", "-t", "nat", "-F", c]);
    await run("iptables", ["-w", "-t", "nat", "-X", c]);
  }
}
