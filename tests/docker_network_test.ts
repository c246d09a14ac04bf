/**
 * Docker-style networks end to end without runc: a "container" is a process in a network namespace of
 * its own (`unshare --net sleep`), and the OCI hook is run for it as runc would (createRuntime with its
 * pid, postStop once it is gone), with Debian's CNI plugins and real iptables. Each test has its own
 * namespace name, network, bridge (bn<hex>), test-only subnet 10.250.X.0/24, conf folder and data root,
 * and puts the host back afterwards, also when it fails. Traffic goes only to loopback, the host's own
 * address and the test's bridge.
 */
import assert from "node:assert/strict";
import { cniContainerId, networkHooks, ociHook } from "../src/docker/hook.ts";
import { HostsStore } from "../src/docker/hosts.ts";
import { createNetwork, type NetworkInfo, removeNetwork } from "../src/docker/networks.ts";
import { type DockerPaths, dockerPaths } from "../src/docker/paths.ts";
import {
  bridgePorts,
  deleteLink,
  iptablesSave,
  otherCniRules,
  parseSave,
  readIpForward,
  restoreIptables,
  rulesMatching,
  writeIpForward,
} from "./helpers/cni_host.ts";
import { mainTs } from "./helpers/daemon.ts";

const PLUGINS = "/usr/lib/cni";

function available(): boolean {
  if (Deno.uid() !== 0) return false;
  for (
    const p of [
      `${PLUGINS}/bridge`,
      `${PLUGINS}/portmap`,
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
  return busybox() !== undefined;
}

function busybox(): string | undefined {
  for (const p of ["/bin/busybox", "/usr/bin/busybox"]) {
    try {
      Deno.statSync(p);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

const ready = available();
const test = (name: string, fn: () => Promise<void>) => Deno.test({ name, ignore: !ready, fn });

const hex = (n: number) =>
  Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => b.toString(16).padStart(2, "0")).join("");

/** A "container": a process alone in a new network namespace. */
interface Box {
  readonly id: string;
  readonly name: string;
  readonly hostname: string;
  readonly proc: Deno.ChildProcess;
  readonly pid: number;
  readonly netns: string;
  readonly annotations: Record<string, string>;
  /** Other processes in its netns (an httpd), killed with it. */
  readonly others: Deno.ChildProcess[];
}

interface World {
  readonly tag: string;
  readonly root: string;
  readonly paths: DockerPaths;
  readonly net: NetworkInfo;
  /** "10.250.X" */
  readonly prefix: string;
  readonly boxes: Box[];
  readonly processes: Deno.ChildProcess[];
  box(suffix: string, ports?: { HostPort: number; ContainerPort: number }[]): Promise<Box>;
}

async function freePrefix(): Promise<string> {
  const out = await new Deno.Command("ip", { args: ["-4", "route", "show", "table", "all"] }).output();
  const routes = new TextDecoder().decode(out.stdout);
  for (let i = 0; i < 50; i++) {
    const x = 10 + Math.floor(Math.random() * 240);
    if (!routes.includes(`10.250.${x}.`)) return `10.250.${x}`;
  }
  throw new Error("No free 10.250.X.0/24 subnet for the test");
}

function freePort(): number {
  const l = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const tag = hex(3);
  const root = await Deno.makeTempDir({ prefix: "berth-docker-net-" });
  const paths = dockerPaths({
    address: `${root}/berth.sock`,
    namespace: `nt${tag}`,
    dataRoot: `${root}/data`,
    cniPath: PLUGINS,
    cniConfDir: `${root}/net.d`,
  });
  const prefix = await freePrefix();
  const before = await iptablesSave();
  const forward = await readIpForward();
  const boxes: Box[] = [];
  const processes: Deno.ChildProcess[] = [];
  const bridge = `bn${tag}`;
  try {
    const net = await createNetwork(paths, `net${tag}`, {
      subnet: `${prefix}.0/24`,
      bridge,
      ipamDataDir: `${root}/ipam`,
    });
    const world: World = {
      tag,
      root,
      paths,
      net,
      prefix,
      boxes,
      processes,
      box: async (suffix, ports = []) => {
        const proc = new Deno.Command("unshare", {
          args: ["--net", "--", "sleep", "600"],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn();
        processes.push(proc);
        const own = await Deno.readLink("/proc/self/ns/net");
        // unshare execs sleep in place: once the pid's netns differs from ours, it is the new one.
        for (let i = 0; i < 100 && (await Deno.readLink(`/proc/${proc.pid}/ns/net`)) === own; i++) {
          await sleep(10);
        }
        const id = `${suffix}${tag}${hex(4)}`;
        const box: Box = {
          id,
          name: `${suffix}-${tag}`,
          hostname: id.slice(0, 12),
          proc,
          pid: proc.pid,
          netns: `/proc/${proc.pid}/ns/net`,
          annotations: {
            "nerdctl/networks": JSON.stringify([net.name]),
            "nerdctl/ports": JSON.stringify(
              ports.map((p) => ({ ...p, Protocol: "tcp", HostIP: "0.0.0.0" })),
            ),
            "nerdctl/name": `${suffix}-${tag}`,
            "nerdctl/hostname": id.slice(0, 12),
            "nerdctl/namespace": paths.namespace,
            "berth/aliases": JSON.stringify([`svc-${suffix}`]),
          },
          others: [],
        };
        boxes.push(box);
        await new HostsStore(paths.dataStore, paths.namespace).writeInitialHosts(box.id, box.hostname);
        return box;
      },
    };
    await fn(world);
  } finally {
    for (const p of processes) {
      try {
        p.kill("SIGKILL");
      } catch {
        // Gone already.
      }
      await p.status;
    }
    for (const b of boxes) await ociHook("postStop", state(b), paths).catch(() => {});
    await deleteLink(bridge);
    const ours = new RegExp(`${bridge}|${tag}|${prefix.replaceAll(".", "\\.")}\\.`);
    // Our rules only: the shared CNI chains (CNI-FORWARD, CNI-ISOLATION-STAGE-*, CNI-HOSTPORT-*) stay,
    // since another test's plugins may be about to use them; postStop above removed our own chains.
    await restoreIptables(keepChains(before, await iptablesSave()), ours);
    if (!(await otherCniRules(ours))) await writeIpForward(forward);
    await Deno.remove(root, { recursive: true });
  }
}

/** `before`'s rules with every chain that exists now, so restoreIptables() deletes rules and no chain. */
function keepChains(before: string, now: string): string {
  const old = parseSave(before);
  const lines: string[] = [];
  for (const [name, table] of parseSave(now)) {
    lines.push(
      `*${name}`,
      ...table.chains.map((c) => `:${c} - [0:0]`),
      ...(old.get(name)?.rules ?? []),
      "COMMIT",
    );
  }
  return lines.join("\n");
}

function state(b: Box): { id: string; pid: number; bundle: string; annotations: Record<string, string> } {
  return { id: b.id, pid: b.pid, bundle: "/nonexistent", annotations: b.annotations };
}

/**
 * Another suite's clean-up (tests/helpers/cni_host.ts restoreIptables) deletes the shared CNI chains it
 * saw appear when it sees no other container's rules, which can be just before our plugins use them; a
 * host without such tests never loses them. One retry covers that window.
 */
const SHARED_CHAIN_GONE = /Chain '?CNI-[A-Z-]+[0-9]?'? does not exist|No chain\/target\/match by that name/;

async function attach(b: Box, w: World): Promise<void> {
  try {
    await ociHook("createRuntime", state(b), w.paths);
  } catch (err) {
    if (!SHARED_CHAIN_GONE.test((err as Error).message)) throw err;
    await ociHook("createRuntime", state(b), w.paths);
  }
}

async function run(argv: string[]): Promise<{ ok: boolean; out: string }> {
  const o = await new Deno.Command(argv[0]!, { args: argv.slice(1), stdin: "null" }).output();
  const d = new TextDecoder();
  return { ok: o.success, out: `${d.decode(o.stdout)}${d.decode(o.stderr)}`.trim() };
}

const inBox = (b: Box, argv: string[]) => run(["nsenter", `--net=${b.netns}`, "--", ...argv]);
const curl = (url: string) => run(["curl", "-sS", "--max-time", "5", url]);

async function boxIp(b: Box): Promise<string> {
  const r = await inBox(b, ["ip", "-o", "-4", "addr", "show", "eth0"]);
  assert.ok(r.ok, r.out);
  const m = /inet (\d+\.\d+\.\d+\.\d+)\/24/.exec(r.out);
  assert.ok(m, r.out);
  return m[1]!;
}

async function startHttpd(w: World, b: Box, port: number, body: string): Promise<void> {
  const www = `${w.root}/www-${b.id}`;
  await Deno.mkdir(www);
  await Deno.writeTextFile(`${www}/index.html`, body);
  const httpd = new Deno.Command("nsenter", {
    args: [`--net=${b.netns}`, "--", busybox()!, "httpd", "-f", "-p", String(port), "-h", www],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  w.processes.push(httpd);
  b.others.push(httpd);
  for (let i = 0; i < 50; i++) {
    if ((await inBox(b, [busybox()!, "wget", "-q", "-O", "-", `http://127.0.0.1:${port}/`])).ok) return;
    await sleep(100);
  }
  throw new Error(`busybox httpd in ${b.netns} did not start`);
}

/** An address of this host that is neither loopback nor on a bridge a test made. */
async function hostAddress(): Promise<string | undefined> {
  const r = await run(["ip", "-4", "-o", "addr", "show", "scope", "global"]);
  for (const line of r.out.split("\n")) {
    const m = /^\d+: (\S+)\s+inet (\d+\.\d+\.\d+\.\d+)\//.exec(line);
    if (m && !/^(10\.250|10\.222|10\.4)\./.test(m[2]!) && !/^(bn|bt|br-|berth|cni|veth)/.test(m[1]!)) {
      return m[2];
    }
  }
  return undefined;
}

/** The container's rules: iptables lines naming its CNI id. */
const rulesOf = (w: World, b: Box) =>
  rulesMatching(new RegExp(`"${cniContainerId(w.paths.namespace, b.id)}\\\\"`));

async function leases(w: World): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(w.net.ipamDir!)) {
      if (/^\d+\.\d+\.\d+\.\d+$/.test(e.name)) names.push(e.name);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return names.sort();
}

async function stop(w: World, b: Box): Promise<void> {
  for (const p of [b.proc, ...b.others]) {
    p.kill("SIGKILL");
    await p.status;
  }
  // As runc: postStop once the container's processes (and with them its netns) are gone.
  for (let i = 0; i < 100; i++) {
    try {
      await Deno.stat(`/proc/${b.pid}`);
      await sleep(10);
    } catch {
      break;
    }
  }
  await ociHook("postStop", state(b), w.paths);
}

test("createRuntime attaches a container to a user network with a published port that answers on 127.0.0.1 and the host's address; postStop leaves nothing", async () => {
  await withWorld(async (w) => {
    const hostPort = freePort();
    const before = await iptablesSave();
    const web = await w.box("web", [{ HostPort: hostPort, ContainerPort: 8080 }]);
    await attach(web, w);
    const ip = await boxIp(web);
    assert.ok(ip.startsWith(`${w.prefix}.`), ip);
    assert.deepEqual(await leases(w), [ip], "host-local leased the address");
    assert.ok((await rulesOf(w, web)).length > 0, "masquerade and portmap rules name the container");
    assert.equal((await bridgePorts(w.net.bridge!)).length, 1, "one veth on the bridge");

    const body = `hello from ${web.name}`;
    await startHttpd(w, web, 8080, body);
    assert.deepEqual(await curl(`http://127.0.0.1:${hostPort}/`), { ok: true, out: body }, "via 127.0.0.1");
    const own = await hostAddress();
    if (own) {
      assert.deepEqual(await curl(`http://${own}:${hostPort}/`), { ok: true, out: body }, `via ${own}`);
    }
    const hosts = await Deno.readTextFile(
      new HostsStore(w.paths.dataStore, w.paths.namespace).hostsPath(web.id),
    );
    assert.match(
      hosts,
      new RegExp(`${ip.replaceAll(".", "\\.")} +${web.hostname} ${web.hostname}\\.${w.net.name} `),
    );

    // Twice (a retried hook) is fine and still one attachment.
    await attach(web, w);
    assert.equal((await leases(w)).length, 1, "still one lease after a second createRuntime");
    assert.equal((await bridgePorts(w.net.bridge!)).length, 1);

    await stop(w, web);
    assert.deepEqual(await bridgePorts(w.net.bridge!), [], "the veth is gone");
    assert.deepEqual(await rulesOf(w, web), [], "no iptables rule names the container");
    const after = await iptablesSave();
    const mine = (text: string) => text.split("\n").filter((l) => l.includes(web.id));
    assert.deepEqual(mine(after), mine(before));
    assert.deepEqual(await leases(w), [], "the lease is released");
    assert.equal((await curl(`http://127.0.0.1:${hostPort}/`)).ok, false, "the port is closed again");
    await ociHook("postStop", state(web), w.paths); // twice is fine
  });
});

test("two containers on one network see each other's names in their hosts files; network rm refuses while one is attached", async () => {
  await withWorld(async (w) => {
    const a = await w.box("a");
    const b = await w.box("b");
    const store = new HostsStore(w.paths.dataStore, w.paths.namespace);
    const inodeA = (await Deno.stat(store.hostsPath(a.id))).ino;
    await attach(a, w);
    await attach(b, w);
    const ipA = await boxIp(a);
    const ipB = await boxIp(b);
    const hostsA = await Deno.readTextFile(store.hostsPath(a.id));
    const hostsB = await Deno.readTextFile(store.hostsPath(b.id));
    for (const text of [hostsA, hostsB]) {
      assert.match(text, new RegExp(`${ipA.replaceAll(".", "\\.")} +${a.hostname} .*${a.name} .*svc-a`));
      assert.match(text, new RegExp(`${ipB.replaceAll(".", "\\.")} +${b.hostname} .*${b.name} .*svc-b`));
    }
    assert.equal((await Deno.stat(store.hostsPath(a.id))).ino, inodeA, "rewritten in place");
    const ping = await inBox(a, [busybox()!, "ping", "-c", "1", "-W", "3", ipB]);
    assert.ok(ping.ok, ping.out);

    await assert.rejects(
      removeNetwork(w.paths, w.net.name),
      new RegExp(`in use by containers ${a.name}, ${b.name}`),
    );
    await stop(w, a);
    assert.doesNotMatch(
      await Deno.readTextFile(store.hostsPath(b.id)),
      new RegExp(a.name),
      "a left b's hosts",
    );
    await assert.rejects(removeNetwork(w.paths, w.net.name), new RegExp(`in use by container ${b.name}:`));
    await stop(w, b);
    await removeNetwork(w.paths, w.net.name);
    assert.equal((await run(["ip", "link", "show", w.net.bridge!])).ok, false, "the bridge is deleted");
    assert.deepEqual(
      await rulesMatching(new RegExp(`-[io] ${w.net.bridge} `)),
      [],
      "the firewall plugin's isolation rules of the bridge are gone",
    );
    await assert.rejects(Deno.stat(w.net.file), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(w.net.ipamDir!), Deno.errors.NotFound);
  });
});

test("createRuntime fails, attaching nothing, for an unknown network and names the ones that exist", async () => {
  await withWorld(async (w) => {
    const a = await w.box("bad");
    a.annotations["nerdctl/networks"] = JSON.stringify([`nope${w.tag}`]);
    await assert.rejects(
      ociHook("createRuntime", state(a), w.paths),
      new RegExp(`Network "nope${w.tag}" not found: the networks are host, none, ${w.net.name}`),
    );
    assert.equal((await inBox(a, ["ip", "link", "show", "eth0"])).ok, false);
    assert.deepEqual(await new HostsStore(w.paths.dataStore, w.paths.namespace).list(), []);
  });
});

test("the hook entries of networkHooks() run `berth internal oci-hook` as a process, with the state on stdin", async () => {
  await withWorld(async (w) => {
    const a = await w.box("cli");
    const hooks = networkHooks(w.paths);
    const runHook = async (h: (typeof hooks.createRuntime)[number], box = a) => {
      const child = new Deno.Command(h.path, {
        args: h.args.slice(1),
        env: Object.fromEntries(
          h.env.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
        ),
        clearEnv: true,
        cwd: "/",
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(JSON.stringify(state(box))));
      await writer.close();
      const out = await child.output();
      return { code: out.code, err: new TextDecoder().decode(out.stderr) };
    };
    let created = await runHook(hooks.createRuntime[0]!);
    if (created.code !== 0 && SHARED_CHAIN_GONE.test(created.err)) {
      created = await runHook(hooks.createRuntime[0]!);
    }
    assert.equal(created.code, 0, created.err);
    assert.ok((await boxIp(a)).startsWith(`${w.prefix}.`));
    a.proc.kill("SIGKILL");
    await a.proc.status;
    const stopped = await runHook(hooks.poststop[0]!);
    assert.equal(stopped.code, 0, stopped.err);
    assert.deepEqual(await leases(w), []);
    assert.deepEqual(await rulesOf(w, a), []);

    // A network that does not exist: exit status 1 and the reason on stderr, which runc shows the user.
    const b = await w.box("clibad");
    b.annotations["nerdctl/networks"] = JSON.stringify([`nope${w.tag}`]);
    const failed = await runHook(hooks.createRuntime[0]!, b);
    assert.equal(failed.code, 1);
    assert.match(failed.err, new RegExp(`Network "nope${w.tag}" not found`));
  });
});

test("berth network create, ls, inspect and rm as a process", async () => {
  await withWorld(async (w) => {
    const cli = (args: string[]) =>
      run([
        Deno.execPath(),
        "run",
        "-A",
        "-q",
        mainTs,
        "--address",
        w.paths.address,
        "--data-root",
        `${w.root}/data`,
        "--cni-netconfpath",
        w.paths.cniConfDir,
        "--cni-path",
        PLUGINS,
        ...args,
      ]);
    const name = `cli${w.tag}`;
    const created = await cli([
      "network",
      "create",
      "--subnet",
      `${w.prefix.replace(/\.\d+$/, "")}.${Number(w.prefix.split(".")[2]) ^ 1}.0/24`,
      "--label",
      "team=x",
      name,
    ]);
    assert.ok(created.ok, created.out);
    assert.match(created.out, /^[0-9a-f]{64}$/);
    const ls = await cli(["network", "ls"]);
    assert.ok(ls.ok, ls.out);
    assert.match(ls.out, /^NETWORK ID +NAME +FILE\n/);
    assert.match(
      ls.out,
      new RegExp(`${created.out.slice(0, 12)} +${name} +${w.paths.cniConfDir}/berth-${name}\\.conflist`),
    );
    assert.match(ls.out, /\n +host *\n/);
    assert.match(ls.out, / bridge +.*berth-bridge\.conflist/);
    const inspect = await cli(["network", "inspect", name]);
    assert.ok(inspect.ok, inspect.out);
    const [doc] = JSON.parse(inspect.out);
    assert.equal(doc.Name, name);
    assert.equal(doc.Id, created.out);
    assert.equal(doc.Driver, "bridge");
    assert.deepEqual(doc.Labels, { team: "x" });
    assert.deepEqual(doc.Containers, {});
    assert.match(doc.IPAM.Config[0].Subnet, /^10\.250\.\d+\.0\/24$/);
    const bad = await cli(["network", "inspect", `nope${w.tag}`]);
    assert.equal(bad.ok, false);
    assert.match(bad.out, /not found: the networks are host, none/);
    const rm = await cli(["network", "rm", name]);
    assert.ok(rm.ok, rm.out);
    assert.equal((await cli(["network", "rm", "bridge"])).ok, false);
  });
});
