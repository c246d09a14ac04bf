/** Berth's daemon starts its own shim in-process and reuses a lingering idle shim for the next run. */
import assert from "node:assert/strict";
import { setup, teardown } from "./helpers/tasks.ts";
import { shimsOf } from "./helpers/procs.ts";

function shimPids(address: string): number[] {
  return [...shimsOf(address).keys()];
}

Deno.test({
  name: "Back-to-back runs reuse the namespace's idle shim, which exits after BERTH_SHIM_IDLE_MS",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup(undefined, "berth", { BERTH_SHIM_IDLE_MS: "1500" });
    try {
      const first = await env.ctr(["run", "--rm", env.image, "once", "/bin/echo", "one"]);
      assert.equal(first.stdout.trim(), "one", first.stderr);
      const shims = shimPids(env.daemon.address);
      assert.equal(shims.length, 1, `one idle shim expected, found ${shims}`);

      const second = await env.ctr(["run", "--rm", env.image, "twice", "/bin/echo", "two"]);
      assert.equal(second.stdout.trim(), "two", second.stderr);
      assert.deepEqual(shimPids(env.daemon.address), shims, "the second run started another shim");

      let left = shims;
      for (let i = 0; i < 50 && left.length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        left = shimPids(env.daemon.address);
      }
      assert.deepEqual(left, [], "the idle shim did not exit");
    } finally {
      await teardown(env);
    }
  },
});
