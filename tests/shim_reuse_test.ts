/** Berth's daemon starts its own shim in-process and reuses a lingering idle shim for the next run. */
import assert from "node:assert/strict";
import { setup, teardown } from "./helpers/tasks.ts";

function shimsOf(address: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0");
      if (cmd.includes("shim") && cmd.includes(address) && !cmd.includes("start")) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
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
      const shims = shimsOf(env.daemon.address);
      assert.equal(shims.length, 1, `one idle shim expected, found ${shims}`);

      const second = await env.ctr(["run", "--rm", env.image, "twice", "/bin/echo", "two"]);
      assert.equal(second.stdout.trim(), "two", second.stderr);
      assert.deepEqual(shimsOf(env.daemon.address), shims, "the second run started another shim");

      let left = shims;
      for (let i = 0; i < 50 && left.length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        left = shimsOf(env.daemon.address);
      }
      assert.deepEqual(left, [], "the idle shim did not exit");
    } finally {
      await teardown(env);
    }
  },
});
