import assert from "node:assert/strict";
import { errorKind } from "../base/errors.ts";
import { HostsStore } from "./hosts.ts";
import {
  createNetwork,
  ensureDefaultNetwork,
  freeSubnet,
  inspectNetwork,
  listNetworks,
  overlaps,
  pruneNetworks,
  removeNetwork,
} from "./networks.ts";
import { dockerPaths } from "./paths.ts";

async function withPaths(fn: (paths: ReturnType<typeof dockerPaths>, root: string) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "berth-networks-" });
  try {
    await fn(
      dockerPaths({
        address: "/run/x.sock",
        namespace: "default",
        dataRoot: `${root}/data`,
        cniConfDir: `${root}/net.d`,
      }),
      root,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("overlaps() and freeSubnet() pick the next 10.4.N.0/24 clear of every used prefix", () => {
  assert.ok(overlaps("10.4.0.0/16", "10.4.3.0/24"));
  assert.ok(overlaps("10.4.3.7/32", "10.4.3.0/24"));
  assert.ok(!overlaps("10.4.2.0/24", "10.4.3.0/24"));
  assert.equal(freeSubnet(["10.4.0.0/24"]), "10.4.1.0/24");
  assert.equal(freeSubnet(["10.4.1.0/24", "10.4.2.9/32", "192.168.0.0/16"]), "10.4.3.0/24");
  assert.equal(freeSubnet(["10.4.0.0/16"]), undefined);
});

Deno.test("listNetworks() shows host and none; ensureDefaultNetwork() writes berth-bridge.conflist once", async () => {
  await withPaths(async (paths) => {
    assert.deepEqual((await listNetworks(paths)).map((n) => n.name), ["host", "none"]);
    const def = await ensureDefaultNetwork(paths);
    assert.equal(def.file, `${paths.cniConfDir}/berth-bridge.conflist`);
    assert.equal(def.bridge, "berth0");
    assert.deepEqual(def.subnets, [{ subnet: "10.4.0.0/24", gateway: "10.4.0.1" }]);
    assert.equal((await ensureDefaultNetwork(paths)).id, def.id);
    const conf = JSON.parse(await Deno.readTextFile(def.file));
    assert.deepEqual(conf.plugins.map((p: { type: string }) => p.type), [
      "bridge",
      "portmap",
      "firewall",
      "tuning",
    ]);
  });
});

Deno.test("createNetwork() allocates subnets, keeps labels and an id, and refuses duplicates and other drivers", async () => {
  await withPaths(async (paths) => {
    await ensureDefaultNetwork(paths);
    const a = await createNetwork(paths, "front", { labels: { team: "x" }, bridge: "btnetua" });
    assert.match(a.subnets[0]!.subnet, /^10\.4\.\d+\.0\/24$/);
    assert.notEqual(a.subnets[0]!.subnet, "10.4.0.0/24");
    assert.deepEqual(a.labels, { team: "x" });
    assert.match(a.id, /^[0-9a-f]{64}$/);
    const b = await createNetwork(paths, "back", { subnet: "10.250.7.9/24", gateway: "10.250.7.254" });
    assert.deepEqual(b.subnets, [{ subnet: "10.250.7.0/24", gateway: "10.250.7.254" }]);
    assert.match(b.bridge!, /^br-[0-9a-f]{12}$/);
    const c = await createNetwork(paths, "third");
    assert.notEqual(c.subnets[0]!.subnet, a.subnets[0]!.subnet);
    await assert.rejects(createNetwork(paths, "front"), /already exists/);
    await assert.rejects(
      createNetwork(paths, "x", { subnet: "10.250.7.128/25" }),
      /overlaps 10\.250\.7\.0\/24 of network "back"/,
    );
    await assert.rejects(
      createNetwork(paths, "x", { driver: "macvlan" }),
      /driver "macvlan" is not supported/,
    );
    await assert.rejects(createNetwork(paths, "host"), /reserved/);
    assert.equal((await inspectNetwork(paths, a.id.slice(0, 12))).name, "front");
    await assert.rejects(
      inspectNetwork(paths, "nope"),
      /Network "nope" not found: the networks are host, none, back, bridge, front, third/,
    );
  });
});

Deno.test("removeNetwork() refuses built-ins and attached networks, then removes the file and the IPAM folder", async () => {
  await withPaths(async (paths, root) => {
    await ensureDefaultNetwork(paths);
    const net = await createNetwork(paths, "front", { bridge: "btnetub", ipamDataDir: `${root}/ipam` });
    assert.equal(net.ipamDir, `${root}/ipam/front`);
    await Deno.mkdir(net.ipamDir!, { recursive: true });
    await Deno.writeTextFile(`${net.ipamDir}/10.4.1.2`, "default-abc\neth0");
    const hosts = new HostsStore(paths.dataStore, "other-ns");
    await hosts.attach({
      id: "abc",
      hostname: "abc",
      name: "web",
      aliases: [],
      networks: { front: "10.4.1.2" },
    });
    assert.deepEqual((await inspectNetwork(paths, "front")).containers, [
      { id: "abc", namespace: "other-ns", name: "web", ip: "10.4.1.2" },
    ]);
    const err = await removeNetwork(paths, "front").catch((e) => e);
    assert.equal(errorKind(err), "failed_precondition");
    assert.match(err.message, /Network "front" is in use by container web: .*berth rm -f web/);
    assert.deepEqual(await pruneNetworks(paths), []);
    await assert.rejects(removeNetwork(paths, "bridge"), /built in/);
    await assert.rejects(removeNetwork(paths, "none"), /built in/);
    await hosts.detach("abc");
    assert.deepEqual(await pruneNetworks(paths), ["front"]);
    await assert.rejects(Deno.stat(net.file), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(net.ipamDir!), Deno.errors.NotFound);
    assert.deepEqual((await listNetworks(paths)).map((n) => n.name), ["host", "none", "bridge"]);
    await assert.rejects(removeNetwork(paths, "front"), /not found/);
  });
});
