/** Runtime names as ctr passes them: a shim binary by absolute path, and names nothing serves. */
import assert from "node:assert/strict";
import { hasShim, leftovers, RUNC_SHIM, setup, teardown } from "./helpers/tasks.ts";

Deno.test({
  name: "ctr run --runtime takes a shim binary's absolute path and names missing runtimes as containerd does",
  ignore: !hasShim,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const env = await setup(undefined, "berth");
    try {
      await t.step("an absolute path runs that shim binary", async () => {
        const r = await env.ctr([
          "run",
          "--rm",
          "--runtime",
          RUNC_SHIM,
          env.image,
          "p1",
          "sh",
          "-c",
          "echo by-path",
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), "by-path");
        assert.deepEqual(await leftovers(env, "p1"), []);
      });

      await t.step("a path that does not exist is an invalid custom binary path", async () => {
        const r = await env.ctr(["run", "--rm", "--runtime", "/nonexistent/shim", env.image, "p2", "true"]);
        assert.notEqual(r.code, 0);
        assert.match(
          r.stderr,
          /invalid custom binary path: stat \/nonexistent\/shim: no such file or directory/,
        );
        assert.deepEqual(await leftovers(env, "p2"), []);
      });

      await t.step(
        "the legacy io.containerd.runtime.v1.linux gets containerd's missing-binary wording",
        async () => {
          const r = await env.ctr([
            "run",
            "--rm",
            "--runtime",
            "io.containerd.runtime.v1.linux",
            env.image,
            "p3",
            "true",
          ]);
          assert.notEqual(r.code, 0);
          assert.match(
            r.stderr,
            /runtime "io\.containerd\.runtime\.v1\.linux" binary not installed "containerd-shim-v1-linux": file does not exist/,
          );
          assert.equal((await env.ctr(["c", "ls", "-q"])).stdout.trim(), "");
        },
      );
    } finally {
      await teardown(env);
    }
  },
});
