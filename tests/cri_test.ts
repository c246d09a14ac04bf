/**
 * The CRI acceptance suite: a real CRI client (k8s.io/cri-api, client-go's SPDY executor) in
 * tests/go/cri/cri drives a runtime's `io.containerd.grpc.v1.cri` plugin as the kubelet and crictl do,
 * against a real registry, a real CNI bridge network of the test's own, and real runc.
 *
 * BERTH_CRI_TARGET picks the runtime: `berth` (the default: Berth's daemon, started with the same CRI
 * config keys containerd reads) or `containerd` (Debian's containerd 1.6, the reference every expected
 * value comes from). GO_SCENARIOS=TestA,TestB runs just those. After the run the host must hold nothing
 * of it: no process, mount, netns, veth, iptables rule, address lease or container cgroup.
 *
 * Nothing is skipped: without Go or the containerd source tree (.ci/run brings both) the build fails
 * and says so, and the Berth target fails each scenario whose behaviour it does not match yet.
 */
import assert from "node:assert/strict";
import { buildCriGoTests, runGoTest } from "./helpers/go_client.ts";
import { startRegistry } from "./helpers/registry.ts";
import {
  buildCriFixtureImages,
  buildFixtureImages,
  type FixtureImage,
  HTTPD_INDEX,
  pushFixtures,
  VOLUME_FILES,
  VOLUME_PATH,
} from "./fixtures/images.ts";
import {
  cleanupHost,
  type CriNetwork,
  criPluginToml,
  type CriRuntime,
  type CriTarget,
  findLeftovers,
  hostState,
  makeCriNetwork,
  type RunTraces,
  startCriRuntime,
} from "./helpers/cri.ts";

const target = (Deno.env.get("BERTH_CRI_TARGET") ?? "berth") as CriTarget;
if (target !== "berth" && target !== "containerd") {
  throw new Error(`BERTH_CRI_TARGET must be "berth" or "containerd", not "${target}"`);
}

/** The scenarios, in the order they run; each is one Go test. */
const scenarios = [
  "TestVersion",
  "TestStatus",
  "TestImageLifecycle",
  "TestImageUser",
  "TestImageFsInfo",
  "TestPodSandboxLifecycle",
  "TestListPodSandboxFilters",
  "TestContainerLifecycle",
  "TestContainerExitCode",
  "TestListContainersFilters",
  "TestStopContainerGraceful",
  "TestStopContainerKillsAfterTimeout",
  "TestRemoveContainer",
  "TestUpdateContainerResources",
  "TestContainerStats",
  "TestImageVolumes",
  "TestContainerLogFormat",
  "TestExecSync",
  "TestExecSyncTimeout",
  "TestExecStreams",
  "TestExecTTYResize",
  "TestAttach",
  "TestPortForward",
  "TestPodsReachEachOther",
  "TestHostPort",
  "TestNetworkTeardown",
  "TestCniPluginFails",
  "TestUnknownSandbox",
  "TestContainerInStoppedSandbox",
  "TestBadImageReference",
  "TestNameConflicts",
  "TestUnknownRuntimeHandler",
  "TestRestartRecovery",
];
const only = Deno.env.get("GO_SCENARIOS")?.split(",");
/** BERTH_CRI_VERBOSE=1 prints what each scenario logged, passed or not. */
const verbose = Deno.env.get("BERTH_CRI_VERBOSE") === "1";

/** What the image scenarios compare with: the size containerd reports counts every blob once. */
function imageFacts(image: FixtureImage<string>) {
  const m = image.manifests[0]!;
  const size = m.descriptor.size + m.config.size + m.layers.reduce((n, l) => n + l.size, 0);
  return { digest: image.descriptor.digest, id: m.config.digest, size };
}

/** BERTH_CRI_LOG=<file> keeps the runtime's log for a look after a run. */
async function keepLog(runtime: CriRuntime): Promise<void> {
  const keep = Deno.env.get("BERTH_CRI_LOG");
  // Appended: a run that restarts the runtime keeps the log of each one.
  if (keep) await Deno.writeTextFile(keep, await runtime.logs().catch((e) => String(e)), { append: true });
}

Deno.test({
  name: `CRI clients work against ${target}'s CRI plugin`,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const bin = await buildCriGoTests("cri");
    const before = await hostState();
    const dir = await Deno.makeTempDir({ prefix: "berth-cri-" });
    const registry = await startRegistry();
    const network: CriNetwork = await makeCriNetwork(dir).catch(async (err) => {
      await registry.stop();
      throw err;
    });
    const traces: RunTraces = {
      dir,
      network,
      cgroupParent: `/berth-critest-${crypto.randomUUID().slice(0, 8)}`,
      recordPath: `${dir}/record`,
    };
    let runtime: CriRuntime | undefined;
    let swept = false;
    try {
      const layouts = `${dir}/fixtures`;
      const pushed = await pushFixtures(registry, await buildFixtureImages(`${layouts}/base`), {
        names: ["single"],
      });
      const cri = await pushFixtures(registry, await buildCriFixtureImages(`${layouts}/cri`));
      await Deno.remove(layouts, { recursive: true });
      const plugin = criPluginToml({
        sandboxImage: cri.pause.reference,
        registryHost: registry.host,
        network,
        runcRoot: `${dir}/runc`,
      });
      const daemon = { dir: `${dir}/daemon`, plugin };
      await Deno.mkdir(daemon.dir);
      await Deno.mkdir(`${dir}/work`);
      runtime = await startCriRuntime(target, daemon);
      const single = imageFacts(pushed.single);
      const flags = {
        "image": pushed.single.reference,
        "image-digest": single.digest,
        "image-id": single.id,
        "image-size": String(single.size),
        "pause-image": cri.pause.reference,
        "httpd-image": cri.httpd.reference,
        "httpd-index": HTTPD_INDEX,
        "volumes-image": cri.volumes.reference,
        "volume-path": VOLUME_PATH,
        "volume-files": JSON.stringify(VOLUME_FILES),
        "workdir": `${dir}/work`,
        "cgroup-parent": traces.cgroupParent,
        "record": traces.recordPath,
        "cni-network": network.name,
        "cni-bridge": network.bridge,
        "cni-subnet": network.subnet,
        "cni-conf-dir": network.confDir,
        "ipam-dir": network.ipamDir,
      };
      // The runtime object changes at each restart; its socket and root do not.
      const args = () =>
        Object.entries({ ...flags, endpoint: runtime!.address, root: runtime!.root }).flatMap((
          [k, v],
        ) => [`-${k}`, v]);
      let down = false;
      const driver = async (what: string) => {
        if (what !== "restart-daemon") throw new Error(`unknown request "${what}"`);
        // As a crash: the pods' shims and containers go on without the daemon.
        await keepLog(runtime!);
        await runtime!.stop("SIGKILL");
        down = true;
        runtime = await startCriRuntime(target, daemon);
        down = false;
      };
      for (const name of scenarios.filter((s) => !only || only.includes(s))) {
        await t.step(name, async () => {
          // A scenario that failed while the daemon was down must not fail the next one.
          if (down) runtime = await startCriRuntime(target, daemon);
          const r = await runGoTest(bin, name, { args: args(), driver, timeoutMs: 300_000 });
          if (verbose) console.log(r.output);
          assert.ok(r.passed, r.output);
        });
      }
      await t.step("the scenarios left no pod and no container in the runtime", async () => {
        swept = true;
        const r = await runGoTest(bin, "TestNothingLeft", { args: args() });
        assert.ok(r.passed, r.output);
      });
      await t.step("the host holds nothing of the run once the runtime stops", async () => {
        const stopping = runtime!;
        runtime = undefined;
        await keepLog(stopping);
        await stopping.stop();
        if (verbose) console.log(`Recorded by the scenarios:\n${await Deno.readTextFile(traces.recordPath)}`);
        const leftovers = await findLeftovers(traces);
        assert.deepEqual(leftovers, [], `Left on the host:\n${leftovers.join("\n")}`);
      });
    } finally {
      if (runtime) {
        if (!swept) {
          await runGoTest(bin, "TestNothingLeft", {
            args: ["-endpoint", runtime.address, "-record", traces.recordPath],
          }).catch(() => {});
        }
        await keepLog(runtime);
        await runtime.stop();
      }
      await registry.stop();
      await cleanupHost(traces, before);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
