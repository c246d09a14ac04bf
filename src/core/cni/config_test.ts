import assert from "node:assert/strict";
import { ConfigError, loadConfDir, LOOPBACK_NETWORK, parseConf, parseConfList } from "./config.ts";

async function withConfDir(files: Record<string, string>, fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "berth-cni-conf-" });
  try {
    for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(`${dir}/${name}`, text);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const list = (name: string, version = "1.0.0") =>
  JSON.stringify({ cniVersion: version, name, plugins: [{ type: "bridge" }, { type: "portmap" }] });

Deno.test("loadConfDir() takes .conflist, .conf and .json files in byte order, the first as default", async () => {
  await withConfDir({
    "20-b.conflist": list("b"),
    "10-a.conf": JSON.stringify({ cniVersion: "0.4.0", name: "a", type: "ptp" }),
    "30-c.json": JSON.stringify({ cniVersion: "0.3.1", name: "c", type: "macvlan" }),
    "Z-upper.conflist": list("upper"),
    "README.md": "not a config",
    "99-d.conflist.bak": list("ignored"),
  }, async (dir) => {
    await Deno.mkdir(`${dir}/00-dir.conflist`);
    const { networks, problems } = await loadConfDir(dir);
    assert.deepEqual(networks.map((n) => n.name), ["a", "b", "c", "upper"]);
    assert.deepEqual(problems, []);
    assert.equal(networks[0]!.source, `${dir}/10-a.conf`);
  });
});

Deno.test("loadConfDir() of a missing folder finds nothing and reports no problem", async () => {
  assert.deepEqual(await loadConfDir("/nonexistent/berth-cni"), { networks: [], problems: [] });
});

Deno.test("parseConf() wraps a single plugin into a list that keeps the plugin's whole object", () => {
  const conf = {
    cniVersion: "0.4.0",
    name: "net",
    type: "bridge",
    bridge: "b0",
    ipam: { type: "host-local" },
  };
  const l = parseConf(JSON.stringify(conf), "/x/net.conf");
  assert.equal(l.name, "net");
  assert.equal(l.cniVersion, "0.4.0");
  assert.equal(l.plugins.length, 1);
  assert.equal(l.plugins[0]!.type, "bridge");
  assert.deepEqual(l.plugins[0]!.raw, conf);
  assert.deepEqual(JSON.parse(l.bytes), { cniVersion: "0.4.0", name: "net", plugins: [conf] });
});

Deno.test("loadConfDir() skips malformed files, naming each file and its problem, and keeps the valid ones", async () => {
  await withConfDir({
    "01-json.conflist": "{ not json",
    "02-noplugins.conflist": JSON.stringify({ cniVersion: "1.0.0", name: "x" }),
    "03-empty.conflist": JSON.stringify({ cniVersion: "1.0.0", name: "x", plugins: [] }),
    "04-notype.conflist": JSON.stringify({ cniVersion: "1.0.0", name: "x", plugins: [{ bridge: "b" }] }),
    "05-version.conflist": list("old", "0.2.0"),
    "06-name.conf": JSON.stringify({ cniVersion: "1.0.0", name: "bad name", type: "bridge" }),
    "07-list-in-conf.conf": list("y"),
    "08-noversion.conf": JSON.stringify({ name: "z", type: "bridge" }),
    "09-caps.conflist": JSON.stringify({
      cniVersion: "1.0.0",
      name: "caps",
      plugins: [{ type: "portmap", capabilities: { portMappings: "yes" } }],
    }),
    "10-good.conflist": list("good"),
    "11-dup.conflist": list("good"),
  }, async (dir) => {
    const { networks, problems } = await loadConfDir(dir);
    assert.deepEqual(networks.map((n) => n.name), ["good"]);
    const byFile = Object.fromEntries(problems.map((p) => [p.file.slice(dir.length + 1), p.message]));
    assert.match(byFile["01-json.conflist"]!, /^invalid JSON/);
    assert.match(byFile["02-noplugins.conflist"]!, /no "plugins" list/);
    assert.match(byFile["03-empty.conflist"]!, /"plugins" is empty/);
    assert.match(byFile["04-notype.conflist"]!, /plugins\[0\] has no "type"/);
    assert.match(
      byFile["05-version.conflist"]!,
      /cniVersion "0\.2\.0" is not supported \(supported: 0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0\)/,
    );
    assert.match(byFile["06-name.conf"]!, /network name "bad name" has characters outside/);
    assert.match(byFile["07-list-in-conf.conf"]!, /belongs in a \.conflist file/);
    assert.match(byFile["08-noversion.conf"]!, /no "cniVersion"/);
    assert.match(byFile["09-caps.conflist"]!, /"capabilities" that are not a map of booleans/);
    assert.match(byFile["11-dup.conflist"]!, /network "good" is already defined by .*10-good\.conflist/);
  });
});

Deno.test("parseConfList() errors name the file and start with a capital", () => {
  assert.throws(() => parseConfList("[]", "/etc/cni/net.d/x.conflist"), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(
      err.message,
      "Cannot load CNI config /etc/cni/net.d/x.conflist: the top level is not a JSON object",
    );
    return true;
  });
});

Deno.test("parseConfList() picks the newest supported of cniVersions and reads disableCheck as libcni does", () => {
  const l = parseConfList(
    JSON.stringify({
      cniVersions: ["0.3.1", "1.0.0", "9.9.9"],
      name: "n",
      disableCheck: "true",
      plugins: [{ type: "x" }],
    }),
    "",
  );
  assert.equal(l.cniVersion, "1.0.0");
  assert.equal(l.disableCheck, true);
});

Deno.test("the loopback network is containerd's: cni-loopback, 0.3.1, one loopback plugin", () => {
  assert.equal(LOOPBACK_NETWORK.name, "cni-loopback");
  assert.equal(LOOPBACK_NETWORK.cniVersion, "0.3.1");
  assert.deepEqual(LOOPBACK_NETWORK.plugins.map((p) => p.type), ["loopback"]);
});
