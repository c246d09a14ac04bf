/** Containers in user namespaces, as `ctr run --uidmap/--gidmap` makes them (remapped snapshots). */
import assert from "node:assert/strict";
import { leftovers, setup, teardown } from "./helpers/tasks.ts";

Deno.test({
  name: "ctr run --uidmap/--gidmap runs a user-namespaced container on a writable and a read-only rootfs",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    // The bundle's parents must be traversable by the remapped root, as containerd's are (0711).
    const dir = await Deno.makeTempDir({ prefix: "berth-userns-" });
    await Deno.chmod(dir, 0o711);
    const env = await setup(dir, "berth");
    const maps = ["--uidmap", "0:1000:10000", "--gidmap", "0:2000:10000"];
    try {
      await t.step("writable: root inside is uid 1000 outside and can write its rootfs", async () => {
        const r = await env.ctr([
          "run",
          "--rm",
          ...maps,
          env.image,
          "u1",
          "sh",
          "-c",
          "cat /proc/self/uid_map; touch /new && echo wrote",
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^\s*0\s+1000\s+10000$/m);
        assert.match(r.stdout, /^wrote$/m);
        assert.deepEqual(await leftovers(env, "u1"), []);
      });
      await t.step("read-only: the same mapping on a read-only view", async () => {
        const r = await env.ctr([
          "run",
          "--rm",
          "--read-only",
          ...maps,
          env.image,
          "u2",
          "sh",
          "-c",
          "cat /proc/self/gid_map; touch /new 2>/dev/null || echo refused; exit 3",
        ]);
        assert.equal(r.code, 3, r.stderr);
        assert.match(r.stdout, /^\s*0\s+2000\s+10000$/m);
        assert.match(r.stdout, /^refused$/m);
        assert.deepEqual(await leftovers(env, "u2"), []);
      });
    } finally {
      await teardown(env);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
