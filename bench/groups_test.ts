import assert from "node:assert/strict";
import { isStale } from "./bundle.ts";
import { criFigures, netnsOf, podConfig, unreadyConditions } from "./cri_group.ts";
import { dockerFigures, dockerGroup, freePort, httpGet, PAGE } from "./docker_group.ts";
import { inLanes } from "./exec.ts";
import { memoryFigures } from "./memory_group.ts";
import { mbPerSecond } from "./pull_group.ts";
import { floorSpec, perSecond } from "./run_group.ts";
import { mountsUnder } from "./targets.ts";

Deno.test("mbPerSecond() and perSecond() divide by seconds and refuse a zero duration", () => {
  assert.equal(mbPerSecond(200e6, 2000), 100);
  assert.equal(perSecond(20, 4000), 5);
  assert.throws(() => mbPerSecond(1, 0), /Cannot take a rate/);
});

Deno.test("memoryFigures() has RSS and PSS per count and a marginal figure for each count above 1", () => {
  assert.deepEqual(memoryFigures([1, 10]).map((f) => f.id), [
    "rss_1_mib",
    "pss_1_mib",
    "rss_10_mib",
    "pss_10_mib",
    "marginal_pss_10_mib",
  ]);
});

Deno.test("floorSpec() runs /bin/true without a terminal in the given cgroup and keeps the rest", () => {
  const spec = floorSpec(
    { ociVersion: "1.0.2", process: { args: ["sh"], terminal: true, cwd: "/" }, linux: { namespaces: [] } },
    "/ns/floor",
  );
  assert.deepEqual(spec.process, { args: ["/bin/true"], terminal: false, cwd: "/" });
  assert.deepEqual(spec.linux, { namespaces: [], cgroupsPath: "/ns/floor" });
  assert.equal(spec.ociVersion, "1.0.2");
});

Deno.test("mountsUnder() finds mounts at and below a dir, deepest first, decoding octal escapes", () => {
  const info = [
    "36 35 98:0 / /mnt rw - ext4 /dev/root rw",
    "40 36 0:50 / /tmp/d/state/a/rootfs rw - overlay overlay rw",
    "41 36 0:51 / /tmp/d/state/a\\040b rw - tmpfs tmpfs rw",
    "42 36 0:52 / /tmp/dd rw - tmpfs tmpfs rw",
  ].join("\n");
  assert.deepEqual(mountsUnder(info, "/tmp/d/"), ["/tmp/d/state/a/rootfs", "/tmp/d/state/a b"]);
});

Deno.test("isStale() wants a bundle when it is missing or any source is newer", () => {
  assert.equal(isStale(undefined, []), true);
  assert.equal(isStale(100, [50, 99]), false);
  assert.equal(isStale(100, [50, 101]), true);
});

Deno.test("inLanes() keeps order and never runs more than the lane count at once", async () => {
  let active = 0;
  let peak = 0;
  const jobs = Array.from({ length: 9 }, (_, i) => async () => {
    peak = Math.max(peak, ++active);
    await new Promise((r) => setTimeout(r, 5));
    active--;
    return i;
  });
  assert.deepEqual(await inLanes(jobs, 3), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(peak, 3);
});

Deno.test("criFigures() has the pod figures, idle PSS and PSS per pod count, with the issue's goals", () => {
  const figures = criFigures([10, 30]);
  assert.deepEqual(figures.map((f) => f.id), [
    "pod_start_cold_ms",
    "pod_start_ms",
    "pod_teardown_ms",
    "idle_pss_mib",
    "pss_10_pods_mib",
    "pss_30_pods_mib",
  ]);
  const goals = Object.fromEntries(figures.filter((f) => f.goal !== undefined).map((f) => [f.id, f.goal]));
  assert.deepEqual(goals, { pod_start_ms: 0.7, pss_10_pods_mib: 1.0, pss_30_pods_mib: 0.6 });
  assert.equal(criFigures([5]).at(-1)!.goal, undefined);
});

Deno.test("podConfig() gives each pod a cgroup under the parent and a PID namespace per container", () => {
  const c = podConfig("pod1", { uid: "u1", logDirectory: "/tmp/x/pods/p", cgroupParent: "/bench" });
  assert.equal(c.linux?.cgroupParent, "/bench/podu1");
  assert.equal(c.linux?.securityContext?.namespaceOptions?.pid, 1);
  assert.deepEqual(c.metadata, { name: "pod1", uid: "u1", namespace: "berth-bench", attempt: 0 });
  assert.equal(c.logDirectory, "/tmp/x/pods/p");
});

Deno.test("unreadyConditions() lists RuntimeReady and NetworkReady until both are true", () => {
  assert.deepEqual(unreadyConditions([]), ["RuntimeReady", "NetworkReady"]);
  assert.deepEqual(
    unreadyConditions([{ type: "RuntimeReady", status: true }, { type: "NetworkReady", status: false }]),
    ["NetworkReady"],
  );
  assert.deepEqual(
    unreadyConditions([{ type: "NetworkReady", status: true }, { type: "RuntimeReady", status: true }]),
    [],
  );
});

Deno.test("netnsOf() reads the network namespace path from a verbose sandbox status", () => {
  const info = {
    info: JSON.stringify({
      pid: 42,
      runtimeSpec: {
        linux: { namespaces: [{ type: "pid" }, { type: "network", path: "/var/run/netns/cni-1" }] },
      },
    }),
  };
  assert.equal(netnsOf(info), "/var/run/netns/cni-1");
  assert.equal(netnsOf({}), undefined);
  assert.equal(netnsOf({ info: JSON.stringify({ runtimeSpec: { linux: { namespaces: [] } } }) }), undefined);
});

Deno.test("dockerFigures() has the serving, removal and user-network memory figures for the container count", () => {
  assert.deepEqual(dockerFigures(20).map((f) => f.id), [
    "serve_first_ms",
    "serve_ms",
    "rm_ms",
    "pss_1_mib",
    "pss_20_mib",
    "marginal_pss_20_mib",
  ]);
  assert.throws(() => dockerGroup({ containers: 1 }), /more than 1 container/);
});

Deno.test("httpGet() returns the body of a 200 answer and undefined when nothing listens or the answer is not 200", async () => {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    (req) => new URL(req.url).pathname === "/" ? new Response(PAGE) : new Response("no", { status: 404 }),
  );
  try {
    assert.equal(await httpGet("127.0.0.1", server.addr.port), PAGE);
    assert.equal(await httpGet("127.0.0.1", freePort()), undefined);
  } finally {
    ac.abort();
    await server.finished;
  }
});
