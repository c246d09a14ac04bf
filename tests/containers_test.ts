import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { startDaemon } from "./helpers/daemon.ts";

const spec = {
  typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec",
  value: new TextEncoder().encode("{}"),
};

async function code(p: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return err instanceof ConnectError ? err.code : Code.Unknown;
  }
}

Deno.test({
  name:
    "Containers service creates, lists, updates by field path and deletes containers with containerd's errors",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using daemon = await startDaemon();
    const c = daemon.client("ctest").containers;
    const runtime = { name: "io.containerd.runc.v2" };
    await c.create({ container: { id: "a1", image: "img:1", runtime, spec, labels: { x: "1", y: "2" } } });
    await c.create({
      container: { id: "a2", image: "img:2", runtime, spec, snapshotter: "overlayfs", snapshotKey: "a2" },
    });

    assert.equal(await code(c.create({ container: { id: "a1", runtime, spec } })), Code.AlreadyExists);
    assert.equal(await code(c.create({ container: { id: "bad id", runtime, spec } })), Code.InvalidArgument);
    assert.equal(await code(c.create({ container: { id: "a3", spec } })), Code.InvalidArgument);
    assert.equal(await code(c.create({ container: { id: "a3", runtime } })), Code.InvalidArgument);
    assert.equal(
      await code(c.create({ container: { id: "a3", runtime, spec, snapshotKey: "k" } })),
      Code.InvalidArgument,
    );
    assert.equal(await code(c.get({ id: "nope" })), Code.NotFound);

    const got = (await c.get({ id: "a1" })).container!;
    assert.equal(got.image, "img:1");
    assert.equal(got.spec?.typeUrl, spec.typeUrl);
    assert.equal(new TextDecoder().decode(got.spec?.value), "{}");
    assert.deepEqual((await c.list({ filters: ["labels.x==1"] })).containers.map((x) => x.id), ["a1"]);
    assert.deepEqual((await c.list({ filters: ["snapshotter==overlayfs"] })).containers.map((x) => x.id), [
      "a2",
    ]);
    const streamed: string[] = [];
    for await (const m of c.listStream({})) streamed.push(m.container!.id);
    assert.deepEqual(streamed, ["a1", "a2"]);

    const up = await c.update({
      container: { id: "a1", labels: { y: "", z: "3" }, image: "img:9", runtime, spec },
      updateMask: { paths: ["labels.y", "labels.z", "image"] },
    });
    assert.deepEqual(up.container!.labels, { x: "1", z: "3" });
    assert.equal(up.container!.image, "img:9");
    assert.equal(
      await code(c.update({ container: { id: "a1", runtime, spec }, updateMask: { paths: ["sandbox"] } })),
      Code.InvalidArgument,
    );
    assert.equal(
      await code(c.update({ container: { id: "a1", runtime: { name: "io.containerd.other.v1" }, spec } })),
      Code.InvalidArgument,
    );

    await c.delete({ id: "a1" });
    await c.delete({ id: "a2" });
    assert.equal(await code(c.delete({ id: "a1" })), Code.NotFound);
    assert.deepEqual((await c.list({})).containers, []);
    const tasks = daemon.client("ctest").tasks;
    assert.equal(await code(tasks.get({ containerId: "a1" })), Code.NotFound);
  },
});
