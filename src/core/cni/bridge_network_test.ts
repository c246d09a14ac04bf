import assert from "node:assert/strict";
import { bridgeNetworkConfig, defaultBridgeName, writeBridgeNetwork } from "./bridge_network.ts";
import { loadConfDir } from "./config.ts";

Deno.test("bridgeNetworkConfig() is nerdctl's bridge: bridge, host-local, portmap, firewall, tuning", () => {
  const c = bridgeNetworkConfig("web", {
    subnet: "10.222.5.0/24",
    gateway: "10.222.5.1",
    ipamDataDir: "/x/ipam",
  });
  assert.deepEqual(c, {
    cniVersion: "1.0.0",
    name: "web",
    plugins: [
      {
        type: "bridge",
        bridge: defaultBridgeName("web"),
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: "10.222.5.0/24", gateway: "10.222.5.1" }]],
          routes: [{ dst: "0.0.0.0/0" }],
          dataDir: "/x/ipam",
        },
      },
      { type: "portmap", capabilities: { portMappings: true } },
      { type: "firewall", ingressPolicy: "same-bridge" },
      { type: "tuning" },
    ],
  });
  assert.match(defaultBridgeName("web"), /^br-[0-9a-f]{12}$/);
  const bare = bridgeNetworkConfig("n", {
    subnet: "10.222.6.0/24",
    isolate: false,
    ipMasq: false,
    mtu: 1400,
  });
  const plugins = bare.plugins as Record<string, unknown>[];
  assert.deepEqual(plugins.map((p) => p.type), ["bridge", "portmap", "tuning"]);
  assert.equal(plugins[0]!.ipMasq, false);
  assert.equal(plugins[0]!.mtu, 1400);
});

Deno.test("bridgeNetworkConfig() refuses names, subnets and bridge names the plugins cannot use", () => {
  assert.throws(
    () => bridgeNetworkConfig("no spaces", { subnet: "10.0.0.0/24" }),
    /Network name "no spaces" is not usable/,
  );
  assert.throws(
    () => bridgeNetworkConfig("n", { subnet: "10.0.0.0" }),
    /Subnet "10\.0\.0\.0" of network "n" is not an address\/prefix/,
  );
  assert.throws(
    () => bridgeNetworkConfig("n", { subnet: "10.0.0.0/24", bridge: "much-too-long-bridge" }),
    /Bridge name "much-too-long-bridge" of network "n" is not usable: it is longer than 15 bytes/,
  );
});

Deno.test("writeBridgeNetwork() writes a conflist the runner loads, and will not replace one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-cni-net-" });
  try {
    const path = await writeBridgeNetwork(`${dir}/net.d`, "web", { subnet: "10.222.5.0/24" });
    assert.equal(path, `${dir}/net.d/berth-web.conflist`);
    const { networks, problems } = await loadConfDir(`${dir}/net.d`);
    assert.deepEqual(problems, []);
    assert.deepEqual(networks.map((n) => [n.name, n.plugins.map((p) => p.type)]), [
      ["web", ["bridge", "portmap", "firewall", "tuning"]],
    ]);
    await assert.rejects(
      writeBridgeNetwork(`${dir}/net.d`, "web", { subnet: "10.222.9.0/24" }),
      /Network "web" already exists: .*berth-web\.conflist/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
