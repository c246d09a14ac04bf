/**
 * The containerd 1.6 Go client against Berth: the Go tests in tests/go/src/berthtest/client, built from
 * Debian's golang-github-containerd-containerd-dev, run one by one against a real daemon, a real
 * registry and Berth's own shim. The Go side says in its output what it expected and what it got.
 */
import assert from "node:assert/strict";
import { buildGoTests, hasGoClient, runGoTest } from "./helpers/go_client.ts";
import { startRegistry } from "./helpers/registry.ts";
import { buildFixtureImages, pushFixtures } from "./fixtures/images.ts";
import { startDaemon } from "./helpers/daemon.ts";
import { daemonFor, type Env, runCtr, teardown } from "./helpers/tasks.ts";

const scenarios = Deno.env.get("GO_SCENARIOS")?.split(",") ?? [
  "TestFirstContainer",
  "TestContentStore",
  "TestSnapshotter",
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

Deno.test({
  name: "The containerd 1.6 Go client works against Berth",
  ignore: !hasGoClient,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const bin = await buildGoTests("berthtest/client");
    const registry = await startRegistry();
    // Remapped root (user namespaces) must traverse every folder above a bundle, as with containerd.
    const dir = await Deno.makeTempDir({ prefix: "berth-goclient-" });
    await Deno.chmod(dir, 0o711);
    const shim = daemonFor("berth");
    let env: Env | undefined;
    try {
      const fixtures = await Deno.makeTempDir({ prefix: "berth-fixtures-" });
      const pushed = await pushFixtures(registry, await buildFixtureImages(fixtures), { names: ["single"] })
        .finally(() => Deno.remove(fixtures, { recursive: true }));
      const daemon = await startDaemon({ ...shim, dir });
      const ns = `go${crypto.randomUUID().slice(0, 8)}`;
      env = {
        daemon,
        registry,
        image: pushed.single.reference,
        ns,
        ctr: (args, o) => runCtr(env!.daemon.address, ns, args, o?.timeoutMs),
      };
      const live = env;
      let down = false;
      const restart = async () => {
        live.daemon = await startDaemon({ ...shim, dir });
        down = false;
      };
      const driver = async (what: string) => {
        if (what === "kill-daemon") {
          await live.daemon.stop("SIGKILL");
          down = true;
        } else if (what === "restart-daemon") await restart();
        else throw new Error(`unknown request "${what}"`);
      };
      for (const name of scenarios) {
        await t.step(name, async () => {
          // A scenario that failed between killing and restarting the daemon must not fail the next.
          if (down) await restart();
          const args = ["-address", live.daemon.address, "-image", live.image, "-namespace", ns];
          const r = await runGoTest(bin, name, { args, driver });
          assert.ok(r.passed, r.output);
        });
      }
    } finally {
      if (env) await teardown(env);
      else await registry.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
