import assert from "node:assert/strict";
import { cniChainName, hookPlan, networkHooks } from "./hook.ts";
import { dockerPaths } from "./paths.ts";

Deno.test("hookPlan() reads nerdctl's annotations: networks, ports, names, aliases and the namespace", () => {
  const plan = hookPlan({
    id: "abc",
    pid: 42,
    annotations: {
      "nerdctl/networks": '["front","back"]',
      "nerdctl/ports": '[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":"0.0.0.0"},' +
        '{"HostPort":5353,"ContainerPort":53,"Protocol":"UDP","HostIP":"127.0.0.1"}]',
      "nerdctl/name": "web",
      "nerdctl/hostname": "abc123",
      "nerdctl/namespace": "prod",
      "berth/aliases": '["svc"]',
    },
  }, "default");
  assert.deepEqual(plan, {
    id: "abc",
    namespace: "prod",
    cniId: "prod-abc",
    networks: ["front", "back"],
    ports: [
      { hostPort: 8080, containerPort: 80, protocol: "tcp" },
      { hostPort: 5353, containerPort: 53, protocol: "udp", hostIP: "127.0.0.1" },
    ],
    name: "web",
    hostname: "abc123",
    aliases: ["svc"],
  });
});

Deno.test("hookPlan() defaults to the bridge network; host and none need no CNI and stand alone", () => {
  assert.deepEqual(hookPlan({ id: "a" }, "default").networks, ["bridge"]);
  assert.deepEqual(hookPlan({ id: "a", annotations: { "nerdctl/networks": '["host"]' } }, "x").networks, []);
  assert.deepEqual(hookPlan({ id: "a", annotations: { "nerdctl/networks": '["none"]' } }, "x").networks, []);
  assert.throws(
    () => hookPlan({ id: "a", annotations: { "nerdctl/networks": '["none","front"]' } }, "x"),
    /cannot be combined/,
  );
  assert.throws(() => hookPlan({ id: "a", annotations: { "nerdctl/ports": "{" } }, "x"), /not JSON/);
});

Deno.test("cniChainName() is libcni's FormatChainName", () => {
  // sha512("bridge" + "default-abc"), as the bridge plugin names its masquerade chain.
  assert.match(cniChainName("bridge", "default-abc"), /^CNI-[0-9a-f]{24}$/);
  assert.notEqual(cniChainName("bridge", "default-abc"), cniChainName("bridge", "default-abd"));
});

Deno.test("networkHooks() runs this executable's internal oci-hook with the paths in its environment", () => {
  const paths = dockerPaths({
    address: "/run/berth/berth.sock",
    namespace: "default",
    dataRoot: "/tmp/dr",
    cniPath: "/opt/cni/bin:/usr/lib/cni",
    cniConfDir: "/tmp/net.d",
  });
  const hooks = networkHooks(paths);
  const [create] = hooks.createRuntime;
  const [stop] = hooks.poststop;
  assert.equal(create!.path, Deno.execPath());
  assert.deepEqual(create!.args.slice(-3), ["internal", "oci-hook", "createRuntime"]);
  assert.deepEqual(stop!.args.slice(-3), ["internal", "oci-hook", "postStop"]);
  assert.equal(create!.timeout, 30);
  for (
    const kv of [
      "BERTH_DATA_ROOT=/tmp/dr",
      "BERTH_ADDRESS=/run/berth/berth.sock",
      "BERTH_NAMESPACE=default",
      "BERTH_CNI_PATH=/opt/cni/bin:/usr/lib/cni",
      "BERTH_CNI_NETCONFPATH=/tmp/net.d",
    ]
  ) assert.ok(create!.env.includes(kv), kv);
  assert.ok(create!.env.some((e) => e.startsWith("PATH=")));
});
