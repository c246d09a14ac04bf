import assert from "node:assert/strict";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import type { EventPublisher } from "../core/events/mod.ts";
import { MetadataDB } from "../core/metadata/db.ts";
import { mountAll, unmountAll } from "../core/mount/mod.ts";
import { NativeSnapshotter, OverlaySnapshotter, type Snapshotter } from "../core/snapshots/mod.ts";
import { Kind, Snapshots } from "../gen/services/snapshots/v1/snapshots_pb.ts";
import { errorInterceptor } from "./errors.ts";
import { createSnapshotsService } from "./snapshots.ts";

type Published = { ns: string; topic: string; event: unknown };

async function withService(
  fn: (
    ctx: { client: ReturnType<typeof createClient<typeof Snapshots>>; events: Published[]; tmp: string },
  ) => Promise<void>,
) {
  const tmp = await Deno.makeTempDir({ prefix: "berth-snapshots-svc-" });
  const db = new MetadataDB(`${tmp}/meta.db`);
  try {
    const events: Published[] = [];
    const publisher: EventPublisher = {
      publish<D extends DescMessage>(ns: string, topic: string, _s: D, event: MessageInitShape<D>) {
        events.push({ ns, topic, event });
      },
    };
    const snapshotters = new Map<string, Snapshotter>([
      ["overlayfs", new OverlaySnapshotter(`${tmp}/overlayfs`, db)],
      ["native", new NativeSnapshotter(`${tmp}/native`, db)],
    ]);
    const svc = createSnapshotsService(snapshotters, { events: publisher });
    const transport = createRouterTransport((r) => svc.register(r), {
      router: { interceptors: [errorInterceptor] },
    });
    await fn({ client: createClient(Snapshots, transport), events, tmp });
  } finally {
    db.close();
    await Deno.remove(tmp, { recursive: true });
  }
}

const H = { headers: { "containerd-namespace": "default" } };

async function rejectsCode(p: Promise<unknown>, code: Code, re?: RegExp) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ConnectError, String(err));
    assert.equal(err.code, code, err.message);
    if (re) assert.match(err.rawMessage, re);
    return true;
  });
}

Deno.test("Snapshots service prepares, mounts, commits and views through the chosen snapshotter", async () => {
  await withService(async ({ client, events, tmp }) => {
    for (const snapshotter of ["overlayfs", "native"]) {
      const prep = await client.prepare({ snapshotter, key: "a", labels: { x: "1" } }, H);
      assert.equal(prep.mounts.length, 1);
      const dir = `${tmp}/mnt-${snapshotter}`;
      await Deno.mkdir(dir);
      mountAll(prep.mounts.map((m) => ({ ...m })), dir);
      try {
        await Deno.writeTextFile(`${dir}/hello`, snapshotter);
      } finally {
        unmountAll(dir);
      }
      await client.commit({ snapshotter, name: "c", key: "a" }, H);
      const view = await client.view({ snapshotter, key: "v", parent: "c" }, H);
      mountAll(view.mounts.map((m) => ({ ...m })), dir);
      try {
        assert.equal(await Deno.readTextFile(`${dir}/hello`), snapshotter);
      } finally {
        unmountAll(dir);
      }
      const st = await client.stat({ snapshotter, key: "v" }, H);
      assert.equal(st.info?.kind, Kind.VIEW);
      assert.equal(st.info?.parent, "c");
      const usage = await client.usage({ snapshotter, key: "c" }, H);
      assert.ok(usage.inodes >= 2n);
      assert.deepEqual((await client.mounts({ snapshotter, key: "v" }, H)).mounts, view.mounts);
    }
    assert.deepEqual(events.map((e) => e.topic), [
      "/snapshot/prepare",
      "/snapshot/commit",
      "/snapshot/prepare",
      "/snapshot/commit",
    ]);
    assert.deepEqual(events[1]?.event, { key: "a", name: "c", snapshotter: "overlayfs" });
  });
});

Deno.test("Snapshots service lists with filters, updates labels and removes with events", async () => {
  await withService(async ({ client, events }) => {
    const snapshotter = "overlayfs";
    await client.prepare({ snapshotter, key: "a" }, H);
    await client.commit({ snapshotter, name: "base", key: "a", labels: { role: "base" } }, H);
    for (let i = 0; i < 150; i++) await client.view({ snapshotter, key: `v${i}`, parent: "base" }, H);
    const batches = [];
    for await (const r of client.list({ snapshotter, filters: ["kind==view"] }, H)) {
      batches.push(r.info.length);
    }
    assert.deepEqual(batches, [100, 50]);
    const committed = [];
    for await (const r of client.list({ snapshotter, filters: ["labels.role==base"] }, H)) {
      committed.push(...r.info);
    }
    assert.deepEqual(committed.map((i) => i.name), ["base"]);

    const up = await client.update({
      snapshotter,
      info: { name: "base", labels: { role: "changed", extra: "e" } },
      updateMask: { paths: ["labels.role"] },
    }, H);
    assert.deepEqual(up.info?.labels, { role: "changed" });
    await rejectsCode(
      client.update({ snapshotter, info: { name: "base" }, updateMask: { paths: ["parent"] } }, H),
      Code.InvalidArgument,
    );

    await rejectsCode(
      client.remove({ snapshotter, key: "base" }, H),
      Code.FailedPrecondition,
      /has it as parent/,
    );
    await client.remove({ snapshotter, key: "v0" }, H);
    assert.deepEqual(events.at(-1), {
      ns: "default",
      topic: "/snapshot/remove",
      event: { key: "v0", snapshotter },
    });
    await client.cleanup({ snapshotter }, H);
  });
});

Deno.test("Snapshots service maps errors to gRPC codes", async () => {
  await withService(async ({ client }) => {
    await rejectsCode(client.prepare({ snapshotter: "", key: "a" }, H), Code.InvalidArgument, /missing/);
    await rejectsCode(
      client.prepare({ snapshotter: "btrfs", key: "a" }, H),
      Code.InvalidArgument,
      /not loaded: btrfs/,
    );
    await rejectsCode(
      client.prepare({ snapshotter: "native", key: "a" }),
      Code.FailedPrecondition,
      /Namespace/,
    );
    await client.prepare({ snapshotter: "native", key: "a" }, H);
    await rejectsCode(client.prepare({ snapshotter: "native", key: "a" }, H), Code.AlreadyExists);
    await rejectsCode(client.stat({ snapshotter: "native", key: "nope" }, H), Code.NotFound);
    await rejectsCode(
      client.prepare({ snapshotter: "native", key: "b", parent: "a" }, H),
      Code.InvalidArgument,
    );
    await rejectsCode(
      client.commit({ snapshotter: "native", name: "c", key: "a", parent: "other" }, H),
      Code.InvalidArgument,
    );
    // The same key in another snapshotter is another snapshot.
    await client.prepare({ snapshotter: "overlayfs", key: "a" }, H);
  });
});
