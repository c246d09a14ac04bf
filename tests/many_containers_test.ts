/** One namespace's shim serves many containers: no per-container thread may run out (it did at ~30). */
import assert from "node:assert/strict";
import { setup, teardown } from "./helpers/tasks.ts";

Deno.test({
  name: "40 detached containers in one namespace all run on Berth's shared shim and are removed cleanly",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup(undefined, "berth");
    const ids = Array.from({ length: 40 }, (_, i) => `many${i}`);
    try {
      for (const id of ids) {
        const r = await env.ctr(["run", "-d", env.image, id, "/bin/sleep", "600"], { timeoutMs: 15_000 });
        assert.equal(r.code, 0, `${id}: ${r.stderr}`);
      }
      const ls = (await env.ctr(["task", "ls"])).stdout;
      for (const id of ids) assert.match(ls, new RegExp(`^${id}\\s+\\d+\\s+RUNNING$`, "m"));
      const exec = await env.ctr(["task", "exec", "--exec-id", "e1", ids.at(-1)!, "echo", "still answering"]);
      assert.equal(exec.stdout.trim(), "still answering", exec.stderr);
    } finally {
      for (const id of ids) await env.ctr(["task", "kill", "-s", "SIGKILL", id]).catch(() => {});
      await teardown(env);
    }
  },
});
