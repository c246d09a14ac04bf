import assert from "node:assert/strict";
import { groupOf, socketAddress } from "../core/runtime/shim_group.ts";
import { parseShimFlags } from "./flags.ts";
import { toV1Metrics } from "./metrics.ts";

Deno.test("parseShimFlags() reads containerd's Go-style flags and the action after them", () => {
  const f = parseShimFlags([
    "-namespace",
    "default",
    "-address=/run/containerd/containerd.sock",
    "-publish-binary",
    "/usr/bin/containerd",
    "--id",
    "c1",
    "-debug",
    "start",
  ]);
  assert.equal(f.namespace, "default");
  assert.equal(f.address, "/run/containerd/containerd.sock");
  assert.equal(f.id, "c1");
  assert.equal(f.debug, true);
  assert.equal(f.action, "start");
  assert.equal(parseShimFlags(["-namespace", "x"]).action, "");
  assert.throws(() => parseShimFlags(["-bogus", "1"]), /Unknown flag -bogus/);
});

Deno.test("groupOf() takes the runc group annotation, else the namespace: CRI pods share it by default", () => {
  assert.equal(
    groupOf(
      "c1",
      "ns",
      { "io.containerd.runc.v2.group": "g", "io.kubernetes.cri.sandbox-id": "s" },
      undefined,
    ),
    "g",
  );
  assert.equal(groupOf("c1", "ns", { "io.kubernetes.cri.sandbox-id": "s" }, undefined), "ns");
  assert.equal(groupOf("c1", "ns", {}, undefined), "ns");
  assert.equal(groupOf("c1", "ns", {}, "container"), "c1");
});

Deno.test("socketAddress() hashes daemon address, namespace and group as containerd's SocketAddress", async () => {
  assert.equal(
    await socketAddress("/run/containerd/containerd.sock", "default", "grp"),
    "unix:///run/berth/s/376c6348c8b2da0092c578f382cde531d1a5008428a4224c41b83f848672c2a0",
  );
});

Deno.test("toV1Metrics() maps runc's stats onto containerd's cgroup v1 Metrics", () => {
  const m = toV1Metrics({
    cpu: { usage: { total: 10, percpu: [4, 6], kernel: 1, user: 2 }, throttling: {} },
    memory: { usage: { usage: 4096, limit: 8192 }, raw: { cache: 7, total_rss: 9 } },
    pids: { current: 3 },
  });
  assert.equal(m.cpu?.usage?.total, 10n);
  assert.deepEqual(m.cpu?.usage?.perCpu, [4n, 6n]);
  assert.equal(m.memory?.usage?.usage, 4096n);
  assert.equal(m.memory?.usage?.limit, 8192n);
  assert.equal(m.memory?.cache, 7n);
  assert.equal(m.memory?.totalRss, 9n);
  assert.equal(m.pids?.current, 3n);
});
