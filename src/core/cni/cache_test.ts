import assert from "node:assert/strict";
import { ResultCache } from "./cache.ts";
import { parseResult } from "./result.ts";

async function withCache(fn: (cache: ResultCache, dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "berth-cni-cache-" });
  try {
    await fn(new ResultCache(dir), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const config = JSON.stringify({ cniVersion: "1.0.0", name: "net", plugins: [{ type: "bridge" }] });
const result = parseResult(
  JSON.stringify({
    cniVersion: "1.0.0",
    interfaces: [{ name: "eth0" }],
    ips: [{ interface: 0, address: "10.0.0.2/24" }],
  }),
  "1.0.0",
);

Deno.test("ResultCache writes libcni's format at results/<net>-<id>-<ifname>, private, and reads it back", async () => {
  await withCache(async (cache, dir) => {
    await cache.write({
      containerId: "c1",
      network: "net",
      ifname: "eth0",
      netns: "/run/netns/x",
      config,
      args: [["IgnoreUnknown", "1"]],
      capabilities: { portMappings: [{ hostPort: 1, containerPort: 2, protocol: "tcp" }] },
      result,
    });
    const path = `${dir}/results/net-c1-eth0`;
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const raw = JSON.parse(await Deno.readTextFile(path));
    assert.equal(raw.kind, "cniCacheV1");
    assert.equal(atob(raw.config), config, "the config is base64, as Go writes a []byte");
    assert.deepEqual(raw.cniArgs, [["IgnoreUnknown", "1"]]);
    assert.equal(raw.result.ips[0].address, "10.0.0.2/24");
    const back = await cache.read("net", "c1", "eth0");
    assert.equal(back!.config, config);
    assert.deepEqual(back!.result, result);
    assert.equal(back!.netns, "/run/netns/x");
    await cache.remove("net", "c1", "eth0");
    await cache.remove("net", "c1", "eth0");
    assert.equal(await cache.read("net", "c1", "eth0"), undefined);
  });
});

Deno.test("ResultCache.list() reads a file containerd's libcni wrote, and only the asked container's", async () => {
  await withCache(async (cache, dir) => {
    await Deno.mkdir(`${dir}/results`);
    // As libcni 1.x writes it for containerd (fields and encodings), for containers "a" and "a-b".
    for (const id of ["a", "a-b"]) {
      await Deno.writeTextFile(
        `${dir}/results/k8s-pod-network-${id}-eth0`,
        JSON.stringify({
          kind: "cniCacheV1",
          containerId: id,
          config: btoa(config),
          ifName: "eth0",
          networkName: "k8s-pod-network",
          netns: "/var/run/netns/cni-1",
          cniArgs: [["K8S_POD_NAME", "p"]],
          result: { cniVersion: "0.4.0", ips: [{ version: "4", address: "10.1.0.3/24" }], dns: {} },
        }),
      );
    }
    await Deno.writeTextFile(`${dir}/results/junk-a-eth1`, "not json");
    const entries = await cache.list("a");
    assert.equal(entries.length, 1);
    assert.equal(entries[0]!.containerId, "a");
    assert.equal(entries[0]!.config, config);
    assert.deepEqual(entries[0]!.args, [["K8S_POD_NAME", "p"]]);
    assert.equal(entries[0]!.result!.cniVersion, "0.4.0");
    assert.deepEqual(await cache.list("nobody"), []);
  });
});
