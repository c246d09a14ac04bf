/**
 * Docker-style figures (issue 13): `berth run -d -p PORT:80 IMG … httpd` until the page is served on
 * 127.0.0.1:PORT, and `berth rm -f`, beside the closest path containerd 1.6 has, `ctr run -d --cni`
 * (ctr publishes no ports: the page is fetched from the container's own address); and the memory of
 * daemon plus shims with 20 httpd containers on a user network. podman's `run -d -p` is a reference
 * figure when podman is installed.
 */

import { CniManager } from "../src/core/cni/mod.ts";
import { buildFixtureImages, pushFixtures } from "../tests/fixtures/images.ts";
import { startRegistry, type TestRegistry } from "../tests/helpers/registry.ts";
import {
  benchConflist,
  type BenchNetwork,
  DEBIAN_CNI_DIR,
  freeOctets,
  HostChanges,
  leaseOf,
  LIBCNI_STATE,
  taskPids,
} from "./docker_host.ts";
import { ctrArgv, inLanes, must, type Timed } from "./exec.ts";
import { startReady } from "./ready.ts";
import type { FigureGroup, FigureSpec, SampleContext, SetupContext } from "./runner.ts";
import { daemonAndShimsMemory, marginal } from "./shims.ts";
import { sleep } from "./sleep.ts";
import { median } from "./stats.ts";
import { type Daemon, NAMESPACE, type Target, unmountUnder, which } from "./targets.ts";

/** The page every container serves. */
export const PAGE = "hello from berth-bench\n";
/** The container's command: busybox's httpd in the foreground, serving PAGE on port 80. */
export const HTTPD = [
  "sh",
  "-c",
  `mkdir -p /www && echo '${PAGE.trim()}' > /www/index.html && exec httpd -f -p 80 -h /www`,
];
/** The user network of the memory figures, as the issue names it. */
export const USER_NETWORK = "benchnet";
const LANES = 4;
const CALL_TIMEOUT_MS = 60_000;
const SERVE_TIMEOUT_MS = 30_000;

/** The figures for `containers` httpd containers on the user network. */
export function dockerFigures(containers: number): FigureSpec[] {
  return [
    {
      id: "serve_first_ms",
      label:
        "`run -d -p` → page served, first on a fresh daemon (containerd: `ctr run -d --cni` → GET IP:80)",
      unit: "ms",
    },
    { id: "serve_ms", label: "`run -d -p` → page served, warm (median)", unit: "ms" },
    {
      id: "rm_ms",
      label: "remove it: `berth rm -f` (containerd: CNI DEL + `ctr tasks rm -f` + `ctr containers rm`)",
      unit: "ms",
    },
    { id: "pss_1_mib", label: `daemon + shims PSS, 1 httpd on network ${USER_NETWORK}`, unit: "MiB" },
    {
      id: `pss_${containers}_mib`,
      label: `daemon + shims PSS, ${containers} httpd on network ${USER_NETWORK}`,
      unit: "MiB",
    },
    {
      id: `marginal_pss_${containers}_mib`,
      label: `marginal PSS per container, 1 → ${containers}`,
      unit: "MiB",
    },
  ];
}

/** A TCP port nothing listens on now. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** The body of a 200 answer to `GET /` over HTTP/1.0, or undefined when it is not (yet) served. */
export async function httpGet(host: string, port: number, timeoutMs = 500): Promise<string | undefined> {
  const connecting = Deno.connect({ hostname: host, port });
  // A SYN into a bridge that is not up yet is dropped, not refused: do not wait out its retransmit.
  const conn = await Promise.race([connecting, sleep(timeoutMs).then(() => undefined)]).catch(() =>
    undefined
  );
  if (!conn) {
    connecting.then((c) => c.close(), () => {});
    return undefined;
  }
  try {
    await conn.write(new TextEncoder().encode(`GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`));
    const text = await Promise.race([
      new Response(conn.readable).text(),
      sleep(timeoutMs * 4).then(() => undefined),
    ]);
    if (text === undefined || !/^HTTP\/1\.[01] 200 /.test(text)) return undefined;
    return text.slice(text.indexOf("\r\n\r\n") + 4);
  } catch {
    return undefined;
  } finally {
    try {
      conn.close();
    } catch { /* closed by the readable's end */ }
  }
}

/** Polls `GET /` until the page is served. */
async function waitPage(host: string, port: number, signal: AbortSignal): Promise<void> {
  const deadline = performance.now() + SERVE_TIMEOUT_MS;
  let body: string | undefined;
  while ((body = await httpGet(host, port)) !== PAGE) {
    signal.throwIfAborted();
    if (performance.now() > deadline) {
      throw new Error(`http://${host}:${port}/ served no page within ${SERVE_TIMEOUT_MS} ms (last: ${body})`);
    }
    await sleep(2, signal);
  }
}

/** How one target runs, serves and removes a container, and fills the user network. */
interface Driver {
  /** Runs one httpd container; resolves once its page is served. */
  serve(name: string): Promise<void>;
  /** What remove() needs to know, found out between the timed steps. */
  beforeRemove(name: string): Promise<void>;
  remove(name: string): Promise<void>;
  /** Starts an httpd container on the user network (not waited for). */
  runOnNetwork(name: string): Promise<void>;
  /** Removes every container it started and the user network, whatever state they are in. */
  cleanup(): Promise<void>;
}

interface Shared {
  readonly tmp: string;
  readonly host: HostChanges;
  readonly image: string;
  /** The network ctr's go-cni loads from /etc/cni/net.d. */
  readonly ctrNet: BenchNetwork;
  /** A conf folder holding only ctrNet, for the CNI DEL ctr leaves to its caller. */
  readonly ctrConfDir: string;
  /** Berth's --cni-netconfpath, its default network `bridge` already in it. */
  readonly berthConfDir: string;
  readonly userSubnet: string;
  /** podman's argv with private storage, when podman is installed. */
  readonly podman?: readonly string[];
}

export interface DockerGroupOptions {
  /** httpd containers on the user network for the memory figures (default 20). */
  readonly containers?: number;
}

export function dockerGroup(options: DockerGroupOptions = {}): FigureGroup {
  const containers = options.containers ?? 20;
  if (!(containers > 1)) throw new Error("Docker group needs more than 1 container for its marginal figure");
  let shared: Shared | undefined;
  let registry: TestRegistry | undefined;
  let host: HostChanges | undefined;
  let tmp: string | undefined;
  let podmanMissing: string | undefined;
  let seq = 0;

  const setup = async (ctx: SetupContext) => {
    host = await HostChanges.record();
    tmp = await Deno.makeTempDir({ prefix: "berth-bench-docker-" });
    registry = await startRegistry({ signal: ctx.signal });
    const set = await buildFixtureImages(`${tmp}/fixtures`);
    const image =
      (await pushFixtures(registry, set, { names: ["single"], signal: ctx.signal })).single.reference;
    await Deno.remove(`${tmp}/fixtures`, { recursive: true });
    const routes = (await must(["ip", "-4", "route", "show", "table", "all"])).stdout;
    const [a, b, c] = freeOctets(routes, 3);
    const tag = crypto.randomUUID().slice(0, 6);
    const ipamDir = `${tmp}/ipam`;
    const ctrNet = {
      name: `berth-bench-${Deno.pid}`,
      bridge: `bcd${tag}`,
      subnet: `10.232.${a}.0/24`,
      ipamDir,
    };
    // Berth's default network as `berth run` writes it (berth-bridge.conflist), on a bridge, subnet and
    // lease store of the benchmark's own, so a Berth user on this host (berth0) is never touched.
    const berthDefault = { name: "bridge", bridge: `bbd${tag}`, subnet: `10.232.${b}.0/24`, ipamDir };
    const berthConfDir = `${tmp}/berth-net.d`;
    const ctrConfDir = `${tmp}/ctr-net.d`;
    await Deno.mkdir(berthConfDir);
    await Deno.mkdir(ctrConfDir);
    await Deno.writeTextFile(`${berthConfDir}/berth-bridge.conflist`, benchConflist(berthDefault));
    await Deno.writeTextFile(`${ctrConfDir}/00-${ctrNet.name}.conflist`, benchConflist(ctrNet));
    host.bridge(berthDefault.bridge);
    await host.installCtrNetwork(ctrNet);
    const podmanBin = await which("podman");
    let podman: string[] | undefined;
    if (podmanBin) {
      podman = [podmanBin, "--root", `${tmp}/podman/root`, "--runroot", `${tmp}/podman/run`];
      await must([...podman, "pull", "--tls-verify=false", image], {
        signal: ctx.signal,
        timeoutMs: 120_000,
      });
      podmanMissing = undefined;
    } else {
      podmanMissing = "podman is not installed (Debian has it: apt-get install podman); " +
        "the benchmark installs no packages";
      ctx.log(`  docker: ${podmanMissing}`);
    }
    shared = {
      tmp,
      host,
      image,
      ctrNet,
      ctrConfDir,
      berthConfDir,
      userSubnet: `10.232.${c}.0/24`,
      ...(podman ? { podman } : {}),
    };
  };

  const teardown = async () => {
    if (shared?.podman) {
      await must([...shared.podman, "rm", "-a", "-f", "-t", "0"]).catch(() => {});
      await must([...shared.podman, "rmi", "-a", "-f"]).catch(() => {});
    }
    await registry?.stop();
    await host?.restore(NAMESPACE).catch((err) => console.error(`docker group clean-up: ${err.message}`));
    if (tmp) {
      await unmountUnder(tmp).catch(() => {});
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
    shared = undefined;
    registry = undefined;
    host = undefined;
    tmp = undefined;
  };

  const sample = async (target: Target, ctx: SampleContext): Promise<Record<string, number>> => {
    const { signal } = ctx;
    const warmRuns = ctx.quick ? 3 : 5;
    const settleMs = ctx.quick ? 500 : 1_500;
    const out: Record<string, number> = {};
    // Two daemons, so the memory figures do not inherit the serving runs' garbage.
    await onFresh(target, signal, async (driver) => {
      const serves: number[] = [];
      const removes: number[] = [];
      for (let i = 0; i <= warmRuns; i++) {
        const name = `web${++seq}`;
        const t0 = performance.now();
        await driver.serve(name);
        serves.push(performance.now() - t0);
        await driver.beforeRemove(name);
        const t1 = performance.now();
        await driver.remove(name);
        removes.push(performance.now() - t1);
      }
      out.serve_first_ms = serves[0]!;
      out.serve_ms = median(serves.slice(1));
      out.rm_ms = median(removes);
    });
    await onFresh(target, signal, async (driver, d, ctr) => {
      const pss: Record<number, number> = {};
      let started = 0;
      for (const n of [1, containers]) {
        await inLanes(
          Array.from({ length: n - started }, () => () => driver.runOnNetwork(`net${++seq}`)),
          LANES,
        );
        started = n;
        await sleep(settleMs, signal);
        const running = (await ctr(["tasks", "ls"])).stdout.split("\n").filter((l) => / RUNNING\b/.test(l));
        if (running.length !== n) {
          throw new Error(`Expected ${n} running tasks, the daemon lists ${running.length}`);
        }
        pss[n] = (await daemonAndShimsMemory(d.pid, d.socket)).pssKiB / 1024;
      }
      out.pss_1_mib = pss[1]!;
      out[`pss_${containers}_mib`] = pss[containers]!;
      out[`marginal_pss_${containers}_mib`] = marginal(pss[1]!, pss[containers]!, containers);
    });
    return out;
  };

  /** A fresh daemon with the image pulled (not timed); every container removed and the daemon stopped after. */
  async function onFresh(
    target: Target,
    signal: AbortSignal,
    fn: (driver: Driver, d: Daemon, ctr: (args: string[]) => Promise<Timed>) => Promise<void>,
  ): Promise<void> {
    const s = shared!;
    const d = await startReady(target);
    const ctr = (args: string[]) =>
      must(ctrArgv(d.socket, NAMESPACE, args), { signal, timeoutMs: CALL_TIMEOUT_MS });
    const cli = await target.cli();
    const driver = cli
      ? berthDriver(s, cli, d, signal, `${s.tmp}/data${++seq}`)
      : containerdDriver(s, ctr, d.socket, signal);
    try {
      await ctr(["images", "pull", "--plain-http", s.image]);
      await fn(driver, d, ctr);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${target.id} daemon log ends:\n${await d.logTail(5)}`);
    } finally {
      await driver.cleanup().catch(() => {});
      await d.stop();
    }
  }

  const reference = async (ctx: SampleContext): Promise<Record<string, number>> => {
    const podman = shared?.podman;
    if (!podman) throw new Error(podmanMissing ?? "podman was not set up");
    const runs = ctx.quick ? 3 : 5;
    const serves: number[] = [];
    const removes: number[] = [];
    for (let i = 0; i < runs; i++) {
      const name = `pod${++seq}`;
      const port = freePort();
      const t0 = performance.now();
      await must([...podman, "run", "-d", "--name", name, "-p", `${port}:80`, shared!.image, ...HTTPD], {
        signal: ctx.signal,
        timeoutMs: CALL_TIMEOUT_MS,
      });
      await waitPage("127.0.0.1", port, ctx.signal);
      serves.push(performance.now() - t0);
      const t1 = performance.now();
      await must([...podman, "rm", "-f", "-t", "0", name], {
        signal: ctx.signal,
        timeoutMs: CALL_TIMEOUT_MS,
      });
      removes.push(performance.now() - t1);
    }
    return { podman_serve_ms: median(serves), podman_rm_ms: median(removes) };
  };

  return {
    id: "docker",
    title: "Docker-style: `run -d -p` to a served page, `rm -f`, memory on a user network",
    defaultRuns: { full: 3, quick: 1 },
    warmup: false,
    setup,
    teardown,
    sample,
    reference,
    figures: dockerFigures(containers),
    references: [
      {
        id: "podman_serve_ms",
        label: "podman: `podman run -d -p P:80` → page on 127.0.0.1:P (median)",
        unit: "ms",
      },
      { id: "podman_rm_ms", label: "podman: `podman rm -f -t 0` (median)", unit: "ms" },
    ],
    notes: [
      "Each run starts two fresh daemons per target; each pulls the busybox fixture from a local registry " +
      "(not timed). The container is busybox's `httpd -f -p 80` serving a one-line page.",
      "Berth: its own CLI from dist/bundle/main.js (deno start-up included), `berth run -d --name N -p P:80 IMG " +
      "sh -c '…httpd…'` on the default network `bridge` (CNI run by Berth's shim in process once `runc create` " +
      "has made the netns, in place of the createRuntime OCI hook a foreign shim leaves to runc), timed from " +
      "the spawn until a `GET /` (HTTP/1.0, a fresh TCP connection every 2 ms) on 127.0.0.1:P returns the " +
      "page; then `berth rm -f N`, timed (the shim's CNI DEL, in place of the postStop hook, included). " +
      "The default network exists before the first run: its conflist is Berth's " +
      "(bridge, portmap, firewall, tuning) on a bridge, subnet (10.232.N.0/24) and lease folder of the " +
      "benchmark's own, so a Berth user of this host's `berth0` is not disturbed.",
      "containerd: ctr publishes no ports, so its closest path is `ctr run -d --cni IMG ID sh -c '…httpd…'` " +
      "(go-cni: the first conf file of /etc/cni/net.d, plugins in /opt/cni/bin), timed until a `GET /` on the " +
      "container's own address (read from host-local's lease of `<ns>-<id>`) returns the page. For the run " +
      "the benchmark puts `00-berth-bench-<pid>.conflist` (the same plugin chain as Berth's, its own bridge " +
      "and subnet) into /etc/cni/net.d and links Debian's plugins from /usr/lib/cni into /opt/cni/bin, " +
      "creating folders that are missing, and removes exactly those afterwards. A detached ctr never " +
      "detaches the network, so its removal is timed as the CNI DEL ctr's foreground path runs " +
      "(libcni's cached result, Debian's plugins, run by the benchmark) plus `ctr tasks rm -f` and " +
      "`ctr containers rm`.",
      "Warm: the first container on each fresh daemon is the first-run figure (Berth starts its shim for " +
      "it); the median is over the 5 that follow (3 with --quick); removal over all 6.",
      `Memory: on the second daemon, Berth creates \`berth network create --subnet 10.232.N.0/24 ` +
      `${USER_NETWORK}\` and runs \`berth run -d --network ${USER_NETWORK}\` httpd containers; containerd ` +
      `runs \`ctr run -d --cni\` on its network. PSS of the daemon and every shim of its socket (as the ` +
      `memory group sums it) after a settle pause (1.5 s) with 1, then ${containers} running containers ` +
      `(started ${LANES} at a time); marginal = (PSS(${containers}) − PSS(1)) / ${containers - 1}.`,
      "podman (a reference figure, no ratio): `podman run -d -p` with private --root/--runroot, only when " +
      "podman is on PATH; the benchmark installs nothing.",
      "Clean-up, also after a failure: every container removed (Berth: `berth rm -f`; containerd: CNI DEL, " +
      "`ctr tasks rm -f`, `ctr containers rm`), the user network removed with `berth network rm`, the daemons " +
      "and shims stopped, cgroups removed; at the end the conflist and plugin links, the benchmark's " +
      "bridges, every iptables rule naming its containers or bridges (and CNI chains it created, left " +
      "empty), libcni's cached results of its containers and ip_forward are put back as they were.",
    ],
  };
}

/** Berth's own CLI on the daemon, with the benchmark's data root and conf folder. */
function berthDriver(
  s: Shared,
  cli: readonly string[],
  d: Daemon,
  signal: AbortSignal,
  dataRoot: string,
): Driver {
  const argv = (args: string[]) => [
    ...cli,
    "-a",
    d.socket,
    "-n",
    NAMESPACE,
    "--data-root",
    dataRoot,
    "--cni-netconfpath",
    s.berthConfDir,
    "--cni-path",
    DEBIAN_CNI_DIR,
    ...args,
  ];
  const berth = (args: string[]) => must(argv(args), { signal, timeoutMs: CALL_TIMEOUT_MS });
  const names: string[] = [];
  let network = false;
  return {
    async serve(name) {
      const port = freePort();
      names.push(name);
      await berth(["run", "-d", "--name", name, "-p", `${port}:80`, s.image, ...HTTPD]);
      await waitPage("127.0.0.1", port, signal);
    },
    beforeRemove: () => Promise.resolve(),
    async remove(name) {
      await berth(["rm", "-f", name]);
      names.splice(names.indexOf(name), 1);
    },
    async runOnNetwork(name) {
      if (!network) {
        network = true;
        await berth(["network", "create", "--subnet", s.userSubnet, USER_NETWORK]);
        const conf = JSON.parse(await Deno.readTextFile(`${s.berthConfDir}/berth-${USER_NETWORK}.conflist`));
        s.host.bridge(conf.plugins[0].bridge);
      }
      names.push(name);
      await berth(["run", "-d", "--name", name, "--network", USER_NETWORK, s.image, ...HTTPD]);
    },
    async cleanup() {
      const quiet = (args: string[]) => must(argv(args), { timeoutMs: CALL_TIMEOUT_MS });
      for (let i = 0; i < names.length; i += 10) {
        await quiet(["rm", "-f", ...names.slice(i, i + 10)]).catch(() => {});
      }
      if (network) {
        await quiet(["network", "rm", USER_NETWORK]).catch(async () => {
          // Its leases live in host-local's default store; the bridge and rules go at teardown.
          await Deno.remove(`/var/lib/cni/networks/${USER_NETWORK}`, { recursive: true }).catch(() => {});
          await Deno.remove(`${s.berthConfDir}/berth-${USER_NETWORK}.conflist`).catch(() => {});
        });
      }
    },
  };
}

/** ctr with --cni; the CNI DEL ctr's foreground path would run is run here, with the same plugins. */
function containerdDriver(
  s: Shared,
  ctr: (args: string[]) => Promise<Timed>,
  socket: string,
  signal: AbortSignal,
): Driver {
  // libcni's cache (where ctr's go-cni wrote the ADD's result) is this runner's cache format too.
  const cni = new CniManager({
    confDir: s.ctrConfDir,
    binDirs: [DEBIAN_CNI_DIR],
    cacheDir: LIBCNI_STATE,
    loopback: false,
  });
  const pids = new Map<string, number>();
  const cniId = (name: string) => `${NAMESPACE}-${name}`;
  const run = async (name: string) => {
    pids.set(name, 0);
    await ctr(["run", "-d", "--cni", s.image, name, ...HTTPD]);
  };
  const remove = async (name: string) => {
    const pid = pids.get(name);
    await cni.teardown(cniId(name), pid ? `/proc/${pid}/ns/net` : "", { networks: [s.ctrNet.name], signal });
    await ctr(["tasks", "rm", "-f", name]);
    await ctr(["containers", "rm", name]);
    pids.delete(name);
  };
  return {
    async serve(name) {
      await run(name);
      await waitPage(await leaseOf(s.ctrNet.ipamDir, s.ctrNet.name, cniId(name)), 80, signal);
    },
    async beforeRemove(name) {
      // The netns the DEL runs in, as ctr's own foreground path knows it from its task.
      const pid = taskPids((await ctr(["tasks", "ls"])).stdout).get(name);
      if (pid) pids.set(name, pid);
    },
    remove,
    runOnNetwork: run,
    async cleanup() {
      const listed = await must(ctrArgv(socket, NAMESPACE, ["tasks", "ls"]), { timeoutMs: CALL_TIMEOUT_MS })
        .then((r) => taskPids(r.stdout), () => new Map<string, number>());
      for (const [name, pid] of listed) if (pids.has(name)) pids.set(name, pid);
      await inLanes(
        [...pids.keys()].map((name) => async () => {
          const pid = pids.get(name);
          const netns = pid ? `/proc/${pid}/ns/net` : "";
          await cni.teardown(cniId(name), netns, { networks: [s.ctrNet.name] }).catch(() => {});
          const quiet = (args: string[]) =>
            must(ctrArgv(socket, NAMESPACE, args), { timeoutMs: CALL_TIMEOUT_MS });
          await quiet(["tasks", "rm", "-f", name]).catch(() => {});
          await quiet(["containers", "rm", name]).catch(() => {});
        }),
        LANES,
      );
      pids.clear();
    },
  };
}
