import assert from "node:assert/strict";
import { tryVersion, versionLatencies } from "./grpc_client.ts";
import { isAlive, treeMemory } from "./procfs.ts";
import { readyByCtr, readyByGrpc } from "./ready.ts";
import { containerdTarget, stopAll } from "./targets.ts";

const target = containerdTarget();
const missing = await target.unavailableReason();

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name:
    "containerdTarget() runs a confined containerd that answers Version, restarts on its root; stop() leaves nothing behind",
  ignore: missing !== undefined,
  async fn() {
    try {
      const d = await target.start();
      const dir = d.socket.replace(/\/[^/]*$/, "");
      const ms = await readyByGrpc(d, { timeoutMs: 20_000 });
      assert.ok(ms > 0 && ms < 20_000);
      const v = await tryVersion(d.socket, { timeoutMs: 2_000 });
      assert.ok(!(v instanceof Error), String(v));
      assert.match(v.version, /\d+\.\d+/);
      assert.equal((await versionLatencies(d.socket, { calls: 5, warmup: 1 })).length, 5);
      const mem = await treeMemory(d.pid);
      assert.ok(mem.rssKiB > 1024 && mem.pssKiB > 0 && mem.pssKiB <= mem.rssKiB);
      // Its root stays inside the temp dir: nothing written to /var/lib/containerd or /opt/containerd.
      assert.ok(await exists(`${dir}/root/io.containerd.content.v1.content`));

      // A restart comes back on the same root; the first Daemon is spent, the second owns the dir.
      const again = await d.restart();
      assert.equal(isAlive(d.pid), false);
      assert.notEqual(again.pid, d.pid);
      assert.ok((await readyByGrpc(again, { timeoutMs: 20_000 })) > 0);
      await d.stop();
      assert.ok(await exists(`${dir}/root/io.containerd.content.v1.content`));
      await assert.rejects(d.restart(), /stopped or restarted already/);

      await again.stop();
      assert.equal(isAlive(again.pid), false);
      assert.equal(await exists(dir), false);
    } finally {
      await stopAll();
      await target.dispose();
    }
  },
});

Deno.test({
  name: "readyByCtr() waits for the socket and reports the first successful ctr version",
  ignore: missing !== undefined,
  async fn() {
    try {
      const d = await target.start();
      const ms = await readyByCtr(d, { timeoutMs: 20_000 });
      assert.ok(ms > 0 && ms < 20_000);
      await d.stop();
    } finally {
      await stopAll();
    }
  },
});

Deno.test("readyByGrpc() fails naming the daemon and its log when the daemon exits before serving", async () => {
  // `false` exits at once without creating a socket: the poller must notice instead of waiting out its timeout.
  const fake = containerdTarget({ binary: "/bin/false" });
  try {
    const d = await fake.start();
    const t0 = performance.now();
    await assert.rejects(readyByGrpc(d, { timeoutMs: 10_000 }), /containerd daemon exited before serving/);
    assert.ok(performance.now() - t0 < 5_000);
  } finally {
    await stopAll();
  }
});
