/**
 * The containerd 1.6 Go client against Berth: the Go tests in tests/go/src/berthtest/client, built from
 * Debian's golang-github-containerd-containerd-dev, run one by one against a real daemon, a real
 * registry, and Berth's own shim or Debian's containerd-shim-runc-v2. The Go side says in its output
 * what it expected and what it got.
 */
import assert from "node:assert/strict";
import { buildGoTests, hasGoClient, runGoTest } from "./helpers/go_client.ts";
import { startRegistry } from "./helpers/registry.ts";
import { buildFixtureImages, pushFixtures } from "./fixtures/images.ts";
import { startDaemon } from "./helpers/daemon.ts";
import { daemonFor, type Env, hasShim, runCtr, type ShimKind, teardown } from "./helpers/tasks.ts";

/** Scenarios about the daemon's stores: the shim does not matter, so they run once. */
const storeScenarios = ["TestContentStore", "TestSnapshotter"];

/** Scenarios that run a container: once per shim. */
const taskScenarios = [
  "TestFirstContainer",
  "TestExecTerminalLargeOutput",
  "TestKillAfterRuncStateRemoved",
  "TestUserNamespace",
  "TestRuntimeByPath",
  "TestOutputStreamsLive",
  "TestLogURIFile",
  "TestLogURIBinary",
  "TestDaemonKillEndsStreams",
  "TestExitWhileDaemonDown",
];

/** GO_SCENARIOS=TestA,TestB runs just those. */
const only = Deno.env.get("GO_SCENARIOS")?.split(",");

for (const shim of ["berth", "runc"] as ShimKind[]) {
  const scenarios = [...(shim === "berth" ? storeScenarios : []), ...taskScenarios]
    .filter((s) => !only || only.includes(s));
  Deno.test({
    name: `The containerd 1.6 Go client works against Berth (${shim} shim)`,
    ignore: !hasGoClient || scenarios.length === 0 || (shim === "runc" && !hasShim),
    sanitizeResources: false,
    sanitizeOps: false,
    async fn(t) {
      const bin = await buildGoTests("berthtest/client");
      const registry = await startRegistry();
      // Remapped root (user namespaces) must traverse every folder above a bundle, as with containerd.
      const dir = await Deno.makeTempDir({ prefix: "berth-goclient-" });
      await Deno.chmod(dir, 0o711);
      const config = daemonFor(shim);
      const ns = `go${crypto.randomUUID().slice(0, 8)}`;
      // Scenarios may work in a second namespace beside the first.
      const envs: Env[] = [];
      try {
        const fixtures = await Deno.makeTempDir({ prefix: "berth-fixtures-" });
        const pushed = await pushFixtures(registry, await buildFixtureImages(fixtures), { names: ["single"] })
          .finally(() => Deno.remove(fixtures, { recursive: true }));
        let daemon = await startDaemon({ ...config, dir });
        for (const name of [ns, `${ns}-other`]) {
          envs.push({
            get daemon() {
              return daemon;
            },
            registry,
            image: pushed.single.reference,
            ns: name,
            ctr: (args, o) => runCtr(daemon.address, name, args, o?.timeoutMs),
          });
        }
        let down = false;
        const restart = async () => {
          daemon = await startDaemon({ ...config, dir });
          down = false;
        };
        const driver = async (what: string) => {
          if (what === "kill-daemon") {
            await daemon.stop("SIGKILL");
            down = true;
          } else if (what === "restart-daemon") await restart();
          else throw new Error(`unknown request "${what}"`);
        };
        for (const name of scenarios) {
          await t.step(name, async () => {
            // A scenario that failed between killing and restarting the daemon must not fail the next.
            if (down) await restart();
            const args = ["-address", daemon.address, "-image", pushed.single.reference, "-namespace", ns];
            const r = await runGoTest(bin, name, { args, driver });
            assert.ok(r.passed, r.output);
          });
        }
      } finally {
        // The first teardown stops the daemon and the registry; the second only clears its namespace.
        for (const env of envs.reverse()) await teardown(env, { keepDir: true, keepDaemon: env.ns !== ns });
        if (envs.length === 0) await registry.stop();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
  });
}
