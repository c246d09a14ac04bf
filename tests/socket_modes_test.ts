/**
 * The daemon's sockets carry containerd's modes and owners (issue 14 item 11): the API socket and the
 * events socket `<address>.ttrpc` are 0660, owned by `[grpc] uid`/`gid` when configured (containerd
 * gives `.ttrpc` the `[grpc]` owner when it has no `[ttrpc] address` of its own).
 */
import assert from "node:assert/strict";
import { startDaemon, testDaemonConfig } from "./helpers/daemon.ts";

const isRoot = Deno.uid() === 0;

Deno.test("Daemon: the events .ttrpc socket is 0660 and root's without a configured gid", async () => {
  await using d = await startDaemon();
  for (const path of [d.address, `${d.address}.ttrpc`]) {
    const st = await Deno.lstat(path);
    assert.ok(st.isSocket, path);
    assert.equal((st.mode! & 0o777).toString(8), "660", path);
    assert.equal(st.gid, Deno.gid(), path);
  }
});

Deno.test({
  name: "Daemon: the events .ttrpc socket belongs to [grpc] gid when configured",
  ignore: !isRoot,
  async fn() {
    const gid = 4242;
    await using d = await startDaemon({ config: `${testDaemonConfig}[grpc]\n  gid = ${gid}\n` });
    for (const path of [d.address, `${d.address}.ttrpc`]) {
      const st = await Deno.lstat(path);
      assert.equal((st.mode! & 0o777).toString(8), "660", path);
      assert.equal(st.gid, gid, path);
      assert.equal(st.uid, 0, path);
    }
  },
});
