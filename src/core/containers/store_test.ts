import assert from "node:assert/strict";
import { realtimeNanos } from "../../../ffi/clock.ts";
import { MetadataDB } from "../metadata/db.ts";
import { type ContainerInit, ContainerStore, specTypeUrl } from "./mod.ts";
import { MIGRATIONS } from "./store.ts";

function container(id: string, over: Partial<ContainerInit> = {}): ContainerInit {
  return {
    id,
    labels: {},
    image: "",
    runtime: { name: "io.containerd.runc.v2" },
    spec: { typeUrl: specTypeUrl, value: new TextEncoder().encode("{}") },
    snapshotter: "",
    snapshotKey: "",
    extensions: {},
    sandbox: "",
    ...over,
  };
}

Deno.test("ContainerStore records creation and update times in nanoseconds, between the calls' start and end", () => {
  const db = new MetadataDB(":memory:");
  try {
    const store = new ContainerStore(db);
    const t0 = realtimeNanos();
    const created = store.create("default", container("c1"));
    const t1 = realtimeNanos();
    assert.ok(t0 <= created.createdAt && created.createdAt <= t1, `${t0} <= ${created.createdAt} <= ${t1}`);
    assert.equal(created.updatedAt, created.createdAt);
    assert.deepEqual(store.get("default", "c1"), created);
    const t2 = realtimeNanos();
    const updated = store.update("default", container("c1", { labels: { k: "v" } }), {
      fieldpaths: ["labels"],
    });
    const t3 = realtimeNanos();
    assert.ok(t2 <= updated.updatedAt && updated.updatedAt <= t3);
    assert.equal(updated.createdAt, created.createdAt);
    assert.deepEqual(store.list("default"), [updated]);
    assert.ok(
      [created.createdAt, updated.updatedAt].some((t) => t % 1_000_000n !== 0n),
      "whole milliseconds",
    );
  } finally {
    db.close();
  }
});

Deno.test("ContainerStore turns the millisecond times of an older database into nanoseconds", () => {
  const db = new MetadataDB(":memory:");
  try {
    db.migrate("containers", MIGRATIONS.slice(0, 1));
    db.sql.prepare(
      `INSERT INTO containers (namespace, id, runtime_name, spec_type, spec, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      "default",
      "old",
      "io.containerd.runc.v2",
      specTypeUrl,
      new Uint8Array([0x7b, 0x7d]),
      1796606078549,
      1796606079000,
    );
    const c = new ContainerStore(db).get("default", "old");
    assert.deepEqual([c.createdAt, c.updatedAt], [1796606078549000000n, 1796606079000000000n]);
    assert.deepEqual(c.spec, { typeUrl: specTypeUrl, value: new Uint8Array([0x7b, 0x7d]) });
  } finally {
    db.close();
  }
});
