/**
 * The CNI runner with Debian's real plugins (/usr/lib/cni), real network namespaces and real iptables.
 * Each test makes its own bridge (bt<hex>), a free test-only subnet 10.222.X.0/24, its own IPAM data
 * folder and netns folder, and puts the host back afterwards, also when it fails: pods torn down,
 * namespaces unmounted, the bridge deleted, iptables rules and the CNI chains its plugins created
 * removed, ip_forward as it was. Traffic goes only to loopback and to the namespaces on that bridge.
 */
import assert from "node:assert/strict";
import {
  CniManager,
  createNetns,
  netnsCommand,
  podArgs,
  releaseNetnsDir,
  removeNetns,
  runInNetns,
  type SetupResult,
  writeBridgeNetwork,
} from "../src/core/cni/mod.ts";
import { isMountPoint } from "../src/core/cni/mountinfo.ts";
import {
  bridgePorts,
  deleteLink,
  iptablesSave,
  linkExists,
  otherCniRules,
  readIpForward,
  restoreIptables,
  rulesMatching,
  writeIpForward,
} from "./helpers/cni_host.ts";

const PLUGINS = "/usr/lib/cni";

function available(): boolean {
  if (Deno.uid() !== 0) return false;
  for (
    const p of [
      `${PLUGINS}/bridge`,
      "/usr/bin/busybox",
      "/usr/bin/unshare",
      "/usr/bin/nsenter",
      "/usr/bin/curl",
    ]
  ) {
    try {
      Deno.statSync(p);
    } catch {
      return false;
    }
  }
  return true;
}
const ready = available();

interface Pod {
  readonly id: string;
  readonly ns: string;
}

interface Net {
  readonly name: string;
  readonly bridge: string;
  /** "10.222.X" */
  readonly prefix: string;
  readonly root: string;
  readonly confDir: string;
  readonly cacheDir: string;
  readonly ipamDir: string;
  readonly netnsDir: string;
  readonly tag: string;
  /** Pods and processes the finally block cleans up whatever happened. */
  readonly pods: Pod[];
  readonly processes: Deno.ChildProcess[];
  manager(binDirs?: string[]): CniManager;
  pod(suffix: string): Promise<Pod>;
}

const hex = (n: number) =>
  Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => b.toString(16).padStart(2, "0")).join("");

/** A 10.222.X.0/24 that no route on this host uses yet. */
async function freeSubnet(): Promise<string> {
  const routes = new TextDecoder().decode(
    (await new Deno.Command("ip", { args: ["-4", "route", "show", "table", "all"] }).output()).stdout,
  );
  for (let i = 0; i < 50; i++) {
    const x = 100 + Math.floor(Math.random() * 150);
    if (!routes.includes(`10.222.${x}.`)) return `10.222.${x}`;
  }
  throw new Error("No free 10.222.X.0/24 subnet for the test");
}

/** A TCP port nothing listens on now. */
function freePort(): number {
  const l = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function withBridgeNetwork(
  fn: (net: Net) => Promise<void>,
  options: { conflist?: (net: Net) => Promise<void> } = {},
) {
  const tag = hex(4);
  const root = await Deno.makeTempDir({ prefix: "berth-cni-it-" });
  const net: Net = {
    name: `berth-it-${tag}`,
    bridge: `bt${tag}`,
    prefix: await freeSubnet(),
    root,
    confDir: `${root}/net.d`,
    cacheDir: `${root}/state`,
    ipamDir: `${root}/ipam`,
    netnsDir: `${root}/netns`,
    tag,
    pods: [],
    processes: [],
    manager: (binDirs) => new CniManager({ confDir: net.confDir, cacheDir: net.cacheDir, binDirs }),
    pod: async (suffix) => {
      const pod = { id: `pod-${suffix}-${tag}`, ns: await createNetns(net.netnsDir) };
      net.pods.push(pod);
      return pod;
    },
  };
  const before = await iptablesSave();
  const before6 = await iptablesSave("ip6tables-save");
  const forward = await readIpForward();
  try {
    if (options.conflist) await options.conflist(net);
    else {
      await writeBridgeNetwork(net.confDir, net.name, {
        subnet: `${net.prefix}.0/24`,
        bridge: net.bridge,
        ipamDataDir: net.ipamDir,
      });
    }
    await fn(net);
  } finally {
    for (const p of net.processes) {
      try {
        p.kill("SIGKILL");
      } catch {
        // Gone already.
      }
      await p.status;
    }
    const m = net.manager([PLUGINS]);
    for (const pod of net.pods) {
      await m.teardown(pod.id, pod.ns).catch(() => {});
      await removeNetns(pod.ns).catch(() => {});
    }
    await deleteLink(net.bridge);
    const ours = new RegExp(`${net.bridge}|${tag}|${net.prefix.replaceAll(".", "\\.")}\\.`);
    try {
      await restoreIptables(before, ours);
      await restoreIptables(before6, ours, "ip6tables");
      // Another runtime or test using CNI on this machine right now may need forwarding left on.
      if (!(await otherCniRules(ours))) await writeIpForward(forward);
    } finally {
      // Even when iptables could not be put back: the netns folder's mount and the folder go.
      try {
        releaseNetnsDir(net.netnsDir);
      } finally {
        await Deno.remove(root, { recursive: true });
      }
    }
  }
}

/** The host side of the pod's veth: the interface reported outside the netns that is not the bridge. */
function hostVethOf(result: SetupResult, bridge: string): string {
  const veth = result.interfaces.find((i) => !i.sandbox && i.name !== bridge && i.network !== "cni-loopback");
  assert.ok(veth, JSON.stringify(result.interfaces));
  return veth.name;
}

/** The pod's address on eth0, without prefix length. */
function podIP(result: SetupResult): string {
  const ip = result.ips.find((i) => i.interface === "eth0" && !i.address.includes(":"));
  assert.ok(ip, JSON.stringify(result.ips));
  return ip.address.split("/")[0]!;
}

async function inPod(pod: Pod, argv: string[]): Promise<{ ok: boolean; out: string }> {
  const o = await runInNetns(pod.ns, argv, { signal: AbortSignal.timeout(15_000) });
  const d = new TextDecoder();
  return { ok: o.success, out: `${d.decode(o.stdout)}${d.decode(o.stderr)}`.trim() };
}

async function curl(url: string): Promise<{ ok: boolean; out: string }> {
  const o = await new Deno.Command("curl", { args: ["-sS", "--max-time", "5", url], stdin: "null" }).output();
  const d = new TextDecoder();
  return { ok: o.success, out: `${d.decode(o.stdout)}${d.decode(o.stderr)}`.trim() };
}

/**
 * Everything the pod's attachment made is gone: veth, rules, IP reservation, cache entry, netns. With
 * `othersUp` only this pod's own veth and reservation are looked for. Other tests on this machine may
 * make veths of their own at any time, so the host's veths are judged by name and by our bridge.
 */
async function assertNothingLeft(
  net: Net,
  pod: Pod,
  ip: string,
  options: { hostVeth?: string; othersUp?: boolean } = {},
) {
  const onBridge = await bridgePorts(net.bridge);
  if (options.hostVeth) {
    assert.ok(!(await linkExists(options.hostVeth)), `the pod's veth ${options.hostVeth} is gone`);
  }
  if (!options.othersUp) assert.deepEqual(onBridge, [], "no veth on the bridge");
  const mentions = new RegExp(`${pod.id}|${ip.replaceAll(".", "\\.")}[/:]`);
  assert.deepEqual(await rulesMatching(mentions), [], "no iptables rule names the pod or its address");
  assert.deepEqual(await rulesMatching(mentions, "ip6tables-save"), [], "no ip6tables rule names the pod");
  const reserved: string[] = [];
  try {
    for await (const e of Deno.readDir(`${net.ipamDir}/${net.name}`)) reserved.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  assert.ok(!reserved.includes(ip), `host-local still reserves ${ip}: ${reserved.join(" ")}`);
  if (!options.othersUp) {
    assert.ok(reserved.every((f) => f === "lock" || f.startsWith("last_reserved_ip")), reserved.join(" "));
  }
  const cached: string[] = [];
  try {
    for await (const e of Deno.readDir(`${net.cacheDir}/results`)) {
      if (e.name.includes(pod.id)) cached.push(e.name);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  assert.deepEqual(cached, [], "no cached result");
  assert.ok(!isMountPoint(pod.ns), "the netns is unmounted");
  await assert.rejects(Deno.lstat(pod.ns), Deno.errors.NotFound);
}

async function startHttpd(net: Net, pod: Pod, port: number, body: string) {
  const www = `${net.root}/www-${pod.id}`;
  await Deno.mkdir(www);
  await Deno.writeTextFile(`${www}/index.html`, body);
  const { program, args } = netnsCommand(pod.ns, ["busybox", "httpd", "-f", "-p", String(port), "-h", www]);
  net.processes.push(
    new Deno.Command(program, { args, stdin: "null", stdout: "null", stderr: "null" }).spawn(),
  );
  for (let i = 0; i < 50; i++) {
    if ((await inPod(pod, ["busybox", "wget", "-q", "-O", "-", `http://127.0.0.1:${port}/`])).ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`busybox httpd in ${pod.ns} did not start`);
}

const test = (name: string, fn: () => Promise<void>) => Deno.test({ name, ignore: !ready, fn });

test("two pods on a bridge network get addresses on eth0, loopback up, and reach each other; teardown leaves nothing", async () => {
  await withBridgeNetwork(async (net) => {
    const m = net.manager();
    const status = await m.status();
    assert.equal(status.ready, true, status.message);
    assert.deepEqual(status.networks, [net.name]);
    const a = await net.pod("a");
    const b = await net.pod("b");
    const ra = await m.setup(a.id, a.ns, {
      args: podArgs({ namespace: "default", name: "a", uid: "uid-a", sandboxId: a.id }),
    });
    const rb = await m.setup(b.id, b.ns, {
      args: podArgs({ namespace: "default", name: "b", uid: "uid-b", sandboxId: b.id }),
    });
    const ipA = podIP(ra);
    const ipB = podIP(rb);
    assert.notEqual(ipA, ipB);
    assert.ok(ipA.startsWith(`${net.prefix}.`), ipA);
    assert.equal(ra.ips.find((i) => i.interface === "eth0")!.gateway, `${net.prefix}.1`);
    assert.ok(ra.interfaces.some((i) => i.name === net.bridge && !i.sandbox), "the bridge is reported");
    assert.ok(ra.interfaces.some((i) => i.name === "eth0" && i.sandbox === a.ns));
    assert.match(
      (await inPod(a, ["ip", "-o", "-4", "addr", "show", "eth0"])).out,
      new RegExp(`inet ${ipA}/24`),
    );
    assert.match((await inPod(a, ["ip", "-o", "-4", "addr", "show", "lo"])).out, /inet 127\.0\.0\.1\/8/);
    const ab = await inPod(a, ["busybox", "ping", "-c", "1", "-W", "3", ipB]);
    assert.ok(ab.ok, ab.out);
    const ba = await inPod(b, ["busybox", "ping", "-c", "1", "-W", "3", ipA]);
    assert.ok(ba.ok, ba.out);
    assert.ok(
      (await rulesMatching(new RegExp(a.id))).length > 0,
      "masquerade rules name the pod while it is up",
    );

    // One at a time: the first pod's teardown leaves the second one working.
    await m.teardown(a.id, a.ns);
    await removeNetns(a.ns);
    await assertNothingLeft(net, a, ipA, { hostVeth: hostVethOf(ra, net.bridge), othersUp: true });
    assert.ok((await inPod(b, ["ip", "link", "show", "eth0"])).ok);
    await m.teardown(b.id, b.ns);
    await removeNetns(b.ns);
    await assertNothingLeft(net, b, ipB, { hostVeth: hostVethOf(rb, net.bridge) });
  });
});

test("a hostPort on 127.0.0.1 and one on every address reach a busybox httpd in the pod", async () => {
  await withBridgeNetwork(async (net) => {
    const m = net.manager();
    const pod = await net.pod("web");
    const local = freePort();
    const any = freePort();
    const result = await m.setup(pod.id, pod.ns, {
      capabilities: {
        portMappings: [
          { hostPort: local, containerPort: 8080, protocol: "tcp", hostIP: "127.0.0.1" },
          { hostPort: any, containerPort: 8080, protocol: "tcp" },
        ],
      },
    });
    const ip = podIP(result);
    const body = `hello from ${pod.id}`;
    await startHttpd(net, pod, 8080, body);
    // From localhost: portmap's DNAT in OUTPUT, its masquerade mark, and route_localnet on the bridge.
    assert.deepEqual(await curl(`http://127.0.0.1:${local}/`), { ok: true, out: body });
    assert.equal(await Deno.readTextFile(`/proc/sys/net/ipv4/conf/${net.bridge}/route_localnet`), "1\n");
    assert.deepEqual(
      await curl(`http://${net.prefix}.1:${any}/`),
      { ok: true, out: body },
      "via the bridge gateway",
    );
    assert.deepEqual(await curl(`http://${ip}:8080/`), { ok: true, out: body }, "the pod's own address");
    assert.ok(
      (await rulesMatching(new RegExp(`--to-destination ${ip.replaceAll(".", "\\.")}:8080`))).length > 0,
    );

    await m.teardown(pod.id, pod.ns);
    await removeNetns(pod.ns);
    await assertNothingLeft(net, pod, ip, { hostVeth: hostVethOf(result, net.bridge) });
    assert.equal((await curl(`http://127.0.0.1:${local}/`)).ok, false, "the hostPort is closed again");
  });
});

test("a new CniManager over the same cache tears a pod down fully after a restart, even with its config file gone; twice is fine", async () => {
  await withBridgeNetwork(async (net) => {
    const pod = await net.pod("restart");
    const result = await net.manager().setup(pod.id, pod.ns, {
      args: podArgs({ namespace: "ns1", name: "restart", uid: "uid-r", sandboxId: pod.id }),
      capabilities: { portMappings: [{ hostPort: freePort(), containerPort: 80, protocol: "tcp" }] },
    });
    const ip = podIP(result);
    assert.ok(
      (await rulesMatching(new RegExp(pod.id))).some((r) => r.includes("dnat")),
      "portmap rules are up",
    );
    // The "restart": nothing in memory, and the network's config removed since the ADD.
    for await (const e of Deno.readDir(net.confDir)) await Deno.remove(`${net.confDir}/${e.name}`);
    const after = net.manager();
    assert.equal((await after.status()).ready, false);
    await after.teardown(pod.id, pod.ns);
    await after.teardown(pod.id, pod.ns);
    await removeNetns(pod.ns);
    await removeNetns(pod.ns);
    await assertNothingLeft(net, pod, ip, { hostVeth: hostVethOf(result, net.bridge) });
  });
});

test("teardown of a pod never set up, and a second teardown, succeed with the real plugins", async () => {
  await withBridgeNetwork(async (net) => {
    const m = net.manager();
    const ghost = await net.pod("ghost");
    await m.teardown(ghost.id, ghost.ns);
    await m.teardown(ghost.id, "");
    const pod = await net.pod("twice");
    await m.setup(pod.id, pod.ns);
    await m.teardown(pod.id, pod.ns);
    await m.teardown(pod.id, pod.ns);
    assert.deepEqual(await bridgePorts(net.bridge), []);
  });
});

test("a failing plugin at the end of the chain gives a clear error and the ADD leaves nothing behind", async () => {
  let failDir = "";
  await withBridgeNetwork(async (net) => {
    const m = net.manager([PLUGINS, failDir]);
    const pod = await net.pod("fail");
    await assert.rejects(
      m.setup(pod.id, pod.ns, {
        capabilities: { portMappings: [{ hostPort: freePort(), containerPort: 80, protocol: "tcp" }] },
      }),
      (err: Error) => {
        assert.equal(
          err.message,
          `CNI plugin berth-fail of network "${net.name}" failed ADD for container "${pod.id}": quota exceeded: no more pods here (CNI error 11)`,
        );
        return true;
      },
    );
    assert.ok(await linkExists(net.bridge), "the bridge plugin did run");
    await removeNetns(pod.ns);
    // The bridge plugin handed out .2 before the failure: it must be released again.
    await assertNothingLeft(net, pod, `${net.prefix}.2`);
  }, {
    conflist: async (net) => {
      failDir = `${net.root}/bin`;
      await Deno.mkdir(failDir);
      await Deno.writeTextFile(
        `${failDir}/berth-fail`,
        `#!/bin/sh\ncat >/dev/null\n[ "$CNI_COMMAND" = ADD ] || exit 0\n` +
          `echo '{"cniVersion":"1.0.0","code":11,"msg":"quota exceeded","details":"no more pods here"}'\nexit 1\n`,
        { mode: 0o755 },
      );
      await writeBridgeNetwork(net.confDir, net.name, {
        subnet: `${net.prefix}.0/24`,
        bridge: net.bridge,
        ipamDataDir: net.ipamDir,
      });
      const path = `${net.confDir}/berth-${net.name}.conflist`;
      const conf = JSON.parse(await Deno.readTextFile(path));
      conf.plugins.push({ type: "berth-fail" });
      await Deno.writeTextFile(path, JSON.stringify(conf));
    },
  });
});

test("CHECK passes for a healthy pod and names the bridge plugin once the pod's default route is gone", async () => {
  // No portmap in this list: Debian's portmap 1.1.1 fails every CHECK of an IPv4-only pod looking for
  // ip6tables rules it never made (containernetworking/plugins#819, fixed after 1.1.1).
  await withBridgeNetwork(async (net) => {
    const m = net.manager();
    const pod = await net.pod("check");
    const result = await m.setup(pod.id, pod.ns);
    const ip = podIP(result);
    await m.check(pod.id, pod.ns);
    // Not eth0 itself: the bridge plugin learns which masquerade rules to delete from eth0's addresses,
    // so a pod whose eth0 is gone leaks them on DEL (containernetworking/plugins#810).
    assert.ok((await inPod(pod, ["ip", "route", "del", "default"])).ok);
    await assert.rejects(
      m.check(pod.id, pod.ns),
      new RegExp(`CNI plugin bridge of network "${net.name}" failed CHECK for container "${pod.id}"`),
    );
    await m.teardown(pod.id, pod.ns);
    await removeNetns(pod.ns);
    await assertNothingLeft(net, pod, ip, { hostVeth: hostVethOf(result, net.bridge) });
  }, {
    conflist: async (net) => {
      await Deno.mkdir(net.confDir, { recursive: true });
      await Deno.writeTextFile(
        `${net.confDir}/10-check.conflist`,
        JSON.stringify({
          cniVersion: "1.0.0",
          name: net.name,
          plugins: [
            {
              type: "bridge",
              bridge: net.bridge,
              isGateway: true,
              ipMasq: true,
              ipam: {
                type: "host-local",
                ranges: [[{ subnet: `${net.prefix}.0/24` }]],
                routes: [{ dst: "0.0.0.0/0" }],
                dataDir: net.ipamDir,
              },
            },
            { type: "firewall" },
            { type: "tuning" },
          ],
        }),
      );
    },
  });
});
