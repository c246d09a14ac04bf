import assert from "node:assert/strict";
import { errorKind } from "../../base/errors.ts";
import { CniManager, type CniManagerOptions, podArgs } from "./manager.ts";
import { FakePlugins, type RecordedCall, resultJson } from "./testdata/fake_plugins.ts";

interface Env {
  readonly fakes: FakePlugins;
  readonly confDir: string;
  readonly cacheDir: string;
  manager(options?: Partial<CniManagerOptions>): CniManager;
  writeConf(name: string, value: unknown): Promise<void>;
  cacheFiles(): Promise<string[]>;
}

async function withEnv(fn: (env: Env) => Promise<void>) {
  const fakes = await FakePlugins.create();
  const confDir = `${fakes.root}/net.d`;
  const cacheDir = `${fakes.root}/cache`;
  await Deno.mkdir(confDir);
  const env: Env = {
    fakes,
    confDir,
    cacheDir,
    manager: (options = {}) => new CniManager({ confDir, cacheDir, binDirs: [fakes.binDir], ...options }),
    writeConf: (name, value) => Deno.writeTextFile(`${confDir}/${name}`, JSON.stringify(value)),
    cacheFiles: async () => {
      const out: string[] = [];
      try {
        for await (const e of Deno.readDir(`${cacheDir}/results`)) out.push(e.name);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
      return out.sort();
    },
  };
  try {
    await fakes.add("loopback", {
      ADD: {
        stdout: JSON.stringify({
          cniVersion: "0.3.1",
          interfaces: [{ name: "lo", sandbox: "/n" }],
          ips: [{ version: "4", interface: 0, address: "127.0.0.1/8" }],
        }),
      },
    });
    await fn(env);
  } finally {
    await fakes.cleanup();
  }
}

/** A 1.0.0 network: "main" (creates eth0 with an address), "chained" (portMappings), "last" (bandwidth). */
async function threePluginNetwork(env: Env, version = "1.0.0") {
  await env.fakes.add("main", { ADD: { stdout: resultJson("10.9.0.2/24", { version }) } });
  await env.fakes.add("chained", { ADD: { stdout: resultJson("10.9.0.2/24", { version }) } });
  await env.fakes.add("last", { ADD: { stdout: resultJson("10.9.0.2/24", { version }) } });
  await env.writeConf("10-net.conflist", {
    cniVersion: version,
    name: "net",
    plugins: [
      { type: "main", bridge: "b0" },
      { type: "chained", capabilities: { portMappings: true, ipRanges: false } },
      { type: "last", capabilities: { bandwidth: true } },
    ],
  });
}

const calls = (all: RecordedCall[], command: string) => all.filter((c) => c.env.CNI_COMMAND === command);
const args = podArgs({ namespace: "default", name: "web", uid: "u-1", sandboxId: "sb1" });
const capabilities = {
  portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "127.0.0.1" }],
  ipRanges: [[{ subnet: "10.9.0.0/24" }]],
  dns: { servers: ["10.9.0.1"] },
};

Deno.test("CniManager.status() is NetworkPluginNotReady with containerd's message while no config is found", async () => {
  await withEnv(async (env) => {
    const s = await env.manager().status();
    assert.equal(s.ready, false);
    assert.equal(s.reason, "NetworkPluginNotReady");
    assert.equal(
      s.message,
      `Network plugin returns error: cni plugin not initialized: no network config found in ${env.confDir}`,
    );
    await Deno.writeTextFile(`${env.confDir}/10-bad.conflist`, "{");
    const bad = await env.manager().status();
    assert.match(bad.message, /no network config found in .*; skipped .*10-bad\.conflist: invalid JSON/);
  });
});

Deno.test("CniManager.status() is not ready while a plugin of the default network is not installed", async () => {
  await withEnv(async (env) => {
    await env.writeConf("10-net.conflist", {
      cniVersion: "1.0.0",
      name: "net",
      plugins: [{ type: "nosuch" }],
    });
    const s = await env.manager().status();
    assert.equal(s.ready, false);
    assert.match(
      s.message,
      new RegExp(
        `plugin "nosuch" of network "net" \\(.*10-net\\.conflist\\) not found in ${env.fakes.binDir}$`,
      ),
    );
    await env.fakes.add("nosuch", {});
    assert.deepEqual(await env.manager().status(), {
      ready: true,
      reason: "",
      message: "",
      networks: ["net"],
      problems: [],
    });
  });
});

Deno.test("CniManager.setup() runs loopback, then each plugin in order with name, cniVersion, prevResult and its own capabilities", async () => {
  await withEnv(async (env) => {
    await threePluginNetwork(env);
    const result = await env.manager().setup("sb1", "/run/netns/x", { args, capabilities });
    const all = await env.fakes.calls();
    assert.deepEqual(all.map((c) => `${c.plugin} ${c.env.CNI_COMMAND} ${c.env.CNI_IFNAME}`), [
      "loopback ADD lo",
      "main ADD eth0",
      "chained ADD eth0",
      "last ADD eth0",
    ]);
    const [lo, main, chained, last] = all;
    assert.equal(lo!.stdin.name, "cni-loopback");
    assert.equal(lo!.stdin.cniVersion, "0.3.1");
    for (const c of all) {
      assert.equal(c.env.CNI_CONTAINERID, "sb1");
      assert.equal(c.env.CNI_NETNS, "/run/netns/x");
      assert.equal(
        c.env.CNI_ARGS,
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=u-1",
      );
      assert.equal(c.env.CNI_PATH, env.fakes.binDir);
    }
    assert.deepEqual(main!.stdin, { type: "main", bridge: "b0", name: "net", cniVersion: "1.0.0" });
    assert.deepEqual(chained!.stdin.prevResult, JSON.parse(resultJson("10.9.0.2/24")));
    // Only declared (and true) capabilities reach a plugin.
    assert.deepEqual(chained!.stdin.runtimeConfig, { portMappings: capabilities.portMappings });
    assert.equal(last!.stdin.runtimeConfig, undefined, "bandwidth declared but not given: no runtimeConfig");
    assert.deepEqual(result.ips, [
      { address: "127.0.0.1/8", gateway: undefined, interface: "lo", network: "cni-loopback" },
      { address: "10.9.0.2/24", gateway: "10.9.0.1", interface: "eth0", network: "net" },
    ]);
    assert.deepEqual(result.attachments.map((a) => `${a.network}/${a.ifname}`), [
      "cni-loopback/lo",
      "net/eth0",
    ]);
    assert.deepEqual(await env.cacheFiles(), ["cni-loopback-sb1-lo", "net-sb1-eth0"]);
  });
});

Deno.test("CniManager.teardown() after a restart deletes in reverse with the cached config, result, args and capabilities", async () => {
  await withEnv(async (env) => {
    await threePluginNetwork(env);
    await env.manager().setup("sb1", "/run/netns/x", { args, capabilities });
    await env.fakes.clearCalls();
    // The config changes after the ADD: the DEL must still undo what the ADD did.
    await Deno.remove(`${env.confDir}/10-net.conflist`);
    await env.writeConf("10-other.conflist", {
      cniVersion: "1.0.0",
      name: "other",
      plugins: [{ type: "main" }],
    });
    await env.manager().teardown("sb1", "/run/netns/x"); // a new manager: nothing in memory
    const all = await env.fakes.calls();
    assert.deepEqual(all.map((c) => `${c.plugin} ${c.env.CNI_COMMAND}`), [
      "last DEL",
      "chained DEL",
      "main DEL",
      "loopback DEL",
    ]);
    const [last, chained, main, lo] = all;
    for (const c of [last!, chained!, main!]) {
      assert.deepEqual(
        c.stdin.prevResult,
        JSON.parse(resultJson("10.9.0.2/24")),
        `${c.plugin} gets the ADD's result`,
      );
      assert.match(c.env.CNI_ARGS!, /K8S_POD_NAME=web/);
    }
    assert.deepEqual(chained!.stdin.runtimeConfig, { portMappings: capabilities.portMappings });
    assert.equal(lo!.stdin.prevResult, undefined, "0.3.1 DEL gets no prevResult");
    assert.deepEqual(await env.cacheFiles(), []);
  });
});

Deno.test("CniManager.teardown() succeeds for a container never set up, and twice in a row", async () => {
  await withEnv(async (env) => {
    await threePluginNetwork(env);
    await env.manager().teardown("never", "/nonexistent/netns");
    const first = await env.fakes.calls();
    assert.deepEqual(first.map((c) => `${c.plugin} ${c.env.CNI_COMMAND}`), [
      "last DEL",
      "chained DEL",
      "main DEL",
      "loopback DEL",
    ]);
    assert.equal(first[0]!.env.CNI_NETNS, "", "a netns that is gone is passed as empty");
    const m = env.manager();
    await m.setup("sb1", "/run/netns/x");
    await m.teardown("sb1", "/run/netns/x");
    await m.teardown("sb1", "/run/netns/x");
    assert.deepEqual(await env.cacheFiles(), []);
  });
});

Deno.test("CniManager.teardown() goes on past a plugin that reports the container unknown", async () => {
  await withEnv(async (env) => {
    await env.fakes.add("gone", { DEL: { stdout: '{"code":3,"msg":"container unknown"}', exit: 1 } });
    await env.fakes.add("nf", { DEL: { stdout: '{"code":999,"msg":"link not found"}', exit: 1 } });
    await env.fakes.add("ok", {});
    await env.writeConf("10-n.conflist", {
      cniVersion: "1.0.0",
      name: "n",
      plugins: [{ type: "ok" }, { type: "gone" }, { type: "nf" }],
    });
    await env.manager().teardown("c1", "");
    assert.deepEqual(await env.fakes.sequence(), ["nf DEL", "gone DEL", "ok DEL", "loopback DEL"]);
  });
});

Deno.test("CniManager.teardown() keeps the cache entry when a DEL fails, so a retry still has the result", async () => {
  await withEnv(async (env) => {
    await threePluginNetwork(env);
    const m = env.manager();
    await m.setup("sb1", "/run/netns/x");
    await env.fakes.add("chained", { DEL: { stdout: '{"code":11,"msg":"iptables locked"}', exit: 1 } });
    await assert.rejects(
      m.teardown("sb1", "/run/netns/x"),
      /CNI plugin chained of network "net" failed DEL .*iptables locked/,
    );
    assert.deepEqual(await env.cacheFiles(), ["net-sb1-eth0"], "loopback went, net stays for the retry");
    await env.fakes.add("chained", {});
    await env.fakes.clearCalls();
    await m.teardown("sb1", "/run/netns/x");
    const del = await env.fakes.calls();
    assert.deepEqual(del[0]!.stdin.prevResult, JSON.parse(resultJson("10.9.0.2/24")));
    assert.deepEqual(await env.cacheFiles(), []);
  });
});

Deno.test("CniManager.setup() that fails deletes what it added and caches nothing", async () => {
  await withEnv(async (env) => {
    await threePluginNetwork(env);
    await env.fakes.add("chained", {
      ADD: { stdout: '{"cniVersion":"1.0.0","code":7,"msg":"bad portMappings"}', exit: 1 },
    });
    await assert.rejects(env.manager().setup("sb1", "/run/netns/x", { capabilities }), (err: Error) => {
      assert.equal(
        err.message,
        'CNI plugin chained of network "net" failed ADD for container "sb1": bad portMappings (CNI error 7)',
      );
      assert.equal(errorKind(err), "invalid_argument");
      return true;
    });
    const all = await env.fakes.calls();
    assert.deepEqual(all.map((c) => `${c.plugin} ${c.env.CNI_COMMAND}`), [
      "loopback ADD",
      "main ADD",
      "chained ADD",
      "last DEL",
      "chained DEL",
      "main DEL",
      "loopback DEL",
    ]);
    // The DEL is given what the plugins that succeeded returned.
    assert.deepEqual(all[3]!.stdin.prevResult, JSON.parse(resultJson("10.9.0.2/24")));
    assert.deepEqual(await env.cacheFiles(), []);
  });
});

Deno.test("CniManager.setup() reports an unreadable result with the plugin's name, and cleans up", async () => {
  await withEnv(async (env) => {
    await env.fakes.add("weird", {
      ADD: { stdout: '{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1"}]}' },
    });
    await env.writeConf("10-n.conflist", { cniVersion: "1.0.0", name: "n", plugins: [{ type: "weird" }] });
    await assert.rejects(
      env.manager().setup("c1", "/run/netns/x"),
      /CNI plugin weird of network "n" failed ADD for container "c1": unreadable result: ips\[0\]\.address "10\.0\.0\.1" is not an address\/prefix/,
    );
    assert.deepEqual((await env.fakes.sequence()).slice(-2), ["weird DEL", "loopback DEL"]);
  });
});

Deno.test("CniManager.setup() names a missing plugin binary and the folders searched", async () => {
  await withEnv(async (env) => {
    await env.writeConf("10-n.conflist", { cniVersion: "1.0.0", name: "n", plugins: [{ type: "absent" }] });
    await assert.rejects(
      env.manager().setup("c1", "/run/netns/x"),
      new RegExp(
        `CNI plugin absent of network "n" failed ADD for container "c1": no executable named "absent" in ${env.fakes.binDir}`,
      ),
    );
  });
});

Deno.test("CniManager with a 0.3.1 list gives prevResult in the 0.3.1 shape on ADD and none on DEL", async () => {
  await withEnv(async (env) => {
    await threePluginNetwork(env, "0.3.1");
    const m = env.manager({ loopback: false });
    await m.setup("c1", "/run/netns/x");
    await m.teardown("c1", "/run/netns/x");
    const all = await env.fakes.calls();
    const chainedAdd = calls(all, "ADD")[1]!;
    assert.equal(chainedAdd.stdin.cniVersion, "0.3.1");
    assert.deepEqual((chainedAdd.stdin.prevResult as { ips: unknown[] }).ips, [
      { version: "4", interface: 0, address: "10.9.0.2/24", gateway: "10.9.0.1" },
    ]);
    for (const del of calls(all, "DEL")) assert.equal(del.stdin.prevResult, undefined);
  });
});

Deno.test("CniManager.check() runs CHECK with the cached result, skipping lists older than 0.4.0", async () => {
  await withEnv(async (env) => {
    await threePluginNetwork(env);
    const m = env.manager();
    await assert.rejects(m.check("c1", "/run/netns/x"), (err: Error) => errorKind(err) === "not_found");
    await m.setup("c1", "/run/netns/x", { args });
    await env.fakes.clearCalls();
    await env.manager().check("c1", "/run/netns/x");
    const all = await env.fakes.calls();
    assert.deepEqual(all.map((c) => `${c.plugin} ${c.env.CNI_COMMAND}`), [
      "main CHECK",
      "chained CHECK",
      "last CHECK",
    ]);
    for (const c of all) assert.deepEqual(c.stdin.prevResult, JSON.parse(resultJson("10.9.0.2/24")));
    await env.fakes.add("last", { CHECK: { stdout: '{"code":999,"msg":"qdisc missing"}', exit: 1 } });
    await assert.rejects(
      m.check("c1", "/run/netns/x"),
      /CNI plugin last of network "net" failed CHECK for container "c1": qdisc missing/,
    );
  });
});

Deno.test("CniManager.setup() attaches named networks with their interface names", async () => {
  await withEnv(async (env) => {
    await env.fakes.add("p", { ADD: { stdout: resultJson("10.9.0.2/24") } });
    await env.writeConf("10-a.conflist", { cniVersion: "1.0.0", name: "a", plugins: [{ type: "p" }] });
    await env.writeConf("20-b.conflist", { cniVersion: "1.0.0", name: "b", plugins: [{ type: "p" }] });
    const m = env.manager({ loopback: false });
    await m.setup("c1", "/n", { networks: ["b", { name: "a", ifname: "net9" }] });
    assert.deepEqual((await env.fakes.calls()).map((c) => `${c.stdin.name} ${c.env.CNI_IFNAME}`), [
      "b eth0",
      "a net9",
    ]);
    await assert.rejects(m.setup("c2", "/n", { networks: ["zzz"] }), /CNI network "zzz" not found in /);
    await env.fakes.clearCalls();
    await env.manager({ loopback: false, maxConfNum: 0 }).setup("c3", "/n");
    assert.deepEqual((await env.fakes.calls()).map((c) => `${c.stdin.name} ${c.env.CNI_IFNAME}`), [
      "a eth0",
      "b eth1",
    ]);
  });
});

Deno.test("CniManager refuses container ids, CNI_ARGS and interface names that plugins cannot take", async () => {
  await withEnv(async (env) => {
    await threePluginNetwork(env);
    const m = env.manager();
    await assert.rejects(m.setup("-bad", "/n"), /Container id "-bad" is not usable by CNI/);
    await assert.rejects(
      m.setup("ok", "/n", { args: [["A", "1;B=2"]] }),
      /CNI argument "A=1;B=2" is not usable/,
    );
    await assert.rejects(m.setup("ok", ""), /no netns path/);
    await assert.rejects(
      m.setup("ok", "/n", { ifname: "a-very-long-name0" }),
      /Interface name "a-very-long-name0" is not usable/,
    );
    assert.deepEqual(await env.fakes.calls(), []);
  });
});

Deno.test("CniManager.validate() asks each plugin's VERSION and names one that lacks the list's version", async () => {
  await withEnv(async (env) => {
    await threePluginNetwork(env);
    await env.manager().validate();
    await env.fakes.add("last", {
      VERSION: { stdout: '{"cniVersion":"0.4.0","supportedVersions":["0.3.1","0.4.0"]}' },
    });
    await assert.rejects(
      env.manager().validate(),
      /CNI plugin last of network "net" does not support cniVersion 1\.0\.0 \(it supports 0\.3\.1, 0\.4\.0\)/,
    );
  });
});

Deno.test("CniManager runs one operation per container at a time", async () => {
  await withEnv(async (env) => {
    await env.fakes.add("p", { ADD: { stdout: resultJson("10.9.0.2/24") } });
    await env.writeConf("10-a.conflist", { cniVersion: "1.0.0", name: "a", plugins: [{ type: "p" }] });
    const m = env.manager({ loopback: false });
    await Promise.all([m.setup("c1", "/n"), m.teardown("c1", "/n"), m.setup("c1", "/n")]);
    assert.deepEqual(await env.fakes.sequence(), ["p ADD", "p DEL", "p ADD"]);
  });
});
