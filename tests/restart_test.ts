/** Containers outlive the daemon: SIGKILL the daemon, start it again on the same folders, find the tasks. */
import assert from "node:assert/strict";
import { startDaemon } from "./helpers/daemon.ts";
import { daemonFor, hasShim, leftovers, runCtr, setup, type ShimKind, teardown } from "./helpers/tasks.ts";

for (const shim of ["runc", "berth"] as ShimKind[]) {
  Deno.test({
    name:
      `After a SIGKILL restart the daemon reattaches to running tasks and reports exits that happened meanwhile (${shim} shim)`,
    ignore: shim === "runc" && !hasShim,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const env = await setup(undefined, shim);
      try {
        assert.equal((await env.ctr(["run", "-d", env.image, "r1", "sleep", "1000"])).code, 0);
        assert.equal((await env.ctr(["run", "-d", env.image, "r2", "sh", "-c", "sleep 2; exit 5"])).code, 0);
        const before = (await env.ctr(["task", "ls"])).stdout;
        const pid = /^r1\s+(\d+)\s+RUNNING$/m.exec(before)?.[1];
        assert.ok(pid, before);

        await env.daemon.stop("SIGKILL");
        await new Promise((r) => setTimeout(r, 2500));
        env.daemon = await startDaemon({ ...daemonFor(shim), dir: env.daemon.dir });
        env.ctr = (args, o) => runCtr(env.daemon.address, env.ns, args, o?.timeoutMs);

        const after = (await env.ctr(["task", "ls"])).stdout;
        assert.match(after, new RegExp(`^r1\\s+${pid}\\s+RUNNING$`, "m"));
        assert.match(after, /^r2\s+\d+\s+STOPPED$/m);
        const exec = await env.ctr(["task", "exec", "--exec-id", "e1", "r1", "echo", "still-here"]);
        assert.equal(exec.stdout.trim(), "still-here", exec.stderr);

        const rm = await env.ctr(["task", "rm", "r2"]);
        assert.equal(rm.code, 0, rm.stderr);
        assert.match(rm.stderr, /exit code 5/);

        assert.equal((await env.ctr(["task", "kill", "-s", "SIGKILL", "r1"])).code, 0);
        const wait = await new Deno.Command("sh", {
          args: [
            "-c",
            `for i in $(seq 50); do kill -0 ${pid} 2>/dev/null || exit 0; sleep 0.1; done; exit 1`,
          ],
        }).output();
        assert.ok(wait.success, `container process ${pid} survived SIGKILL`);
        await env.ctr(["task", "rm", "r1"]);
        await env.ctr(["c", "rm", "r1", "r2"]);
        assert.deepEqual([...await leftovers(env, "r1"), ...await leftovers(env, "r2")], []);
      } finally {
        await teardown(env);
      }
    },
  });
}

Deno.test({
  name: "A shim that died while the daemon was down is cleaned up at start-up with its bundle",
  ignore: !hasShim,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup();
    try {
      assert.equal((await env.ctr(["run", "-d", env.image, "k1", "sleep", "1000"])).code, 0);
      await env.daemon.stop("SIGKILL");
      const shims = (await leftovers(env, "k1")).filter((l) => l.startsWith("shim pid "));
      assert.equal(shims.length, 1, String(shims));
      Deno.kill(Number(shims[0]!.slice("shim pid ".length)), "SIGKILL");
      await new Promise((r) => setTimeout(r, 300));
      env.daemon = await startDaemon({ ...daemonFor("runc"), dir: env.daemon.dir });
      env.ctr = (args, o) => runCtr(env.daemon.address, env.ns, args, o?.timeoutMs);
      assert.doesNotMatch((await env.ctr(["task", "ls"])).stdout, /k1/);
      assert.deepEqual(await leftovers(env, "k1"), []);
      assert.match(
        env.daemon.logs(),
        /cleaning up dead shim.*k1|id=k1.*cleaning up dead shim|cleaning up dead shim/,
      );
    } finally {
      await teardown(env);
    }
  },
});
