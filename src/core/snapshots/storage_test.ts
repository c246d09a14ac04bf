import assert from "node:assert/strict";
import { realtimeNanos } from "../../../ffi/clock.ts";
import { parseFilters } from "../filters/mod.ts";
import { MetadataDB } from "../metadata/db.ts";
import { MIGRATIONS, SnapshotStore } from "./storage.ts";

Deno.test("SnapshotStore records creation, commit and update times in nanoseconds", () => {
  const db = new MetadataDB(":memory:");
  try {
    const store = new SnapshotStore(db, "native");
    const t0 = realtimeNanos();
    store.createSnapshot("default", "active", "a", {});
    const t1 = realtimeNanos();
    const active = store.getInfo("default", "a").info;
    assert.ok(t0 <= active.created && active.created <= t1, `${t0} <= ${active.created} <= ${t1}`);
    assert.equal(active.updated, active.created);
    const t2 = realtimeNanos();
    store.commitActive("default", "a", "c", { usage: { size: 4096, inodes: 3 } });
    const t3 = realtimeNanos();
    const { info: committed, usage } = store.getInfo("default", "c");
    assert.ok(t2 <= committed.created && committed.created <= t3);
    assert.equal(committed.updated, committed.created);
    assert.deepEqual(usage, { size: 4096, inodes: 3 });
    const t4 = realtimeNanos();
    const updated = store.updateInfo("default", { ...committed, labels: { k: "v" } }, []);
    const t5 = realtimeNanos();
    assert.ok(t4 <= updated.updated && updated.updated <= t5);
    assert.equal(updated.created, committed.created);
    assert.deepEqual(store.list("default", parseFilters([])), [updated]);
    assert.ok([active.created, committed.created, updated.updated].some((t) => t % 1_000_000n !== 0n));
  } finally {
    db.close();
  }
});

Deno.test("SnapshotStore moves the millisecond times of an older database to nanoseconds and keeps parents", () => {
  const db = new MetadataDB(":memory:");
  try {
    db.migrate("snapshots", MIGRATIONS.slice(0, 1));
    const insert = db.sql.prepare(
      `INSERT INTO snapshots (snapshotter, namespace, key, kind, parent_id, created_ms, updated_ms, size, inodes)
       VALUES ('native', 'default', ?, ?, ?, ?, ?, ?, ?)`,
    );
    const parent =
      insert.run("base", "committed", null, 1796606078549, 1796606078549, 8192, 2).lastInsertRowid;
    insert.run("child", "active", parent, 1796606079000, 1796606079001, 0, 0);
    const store = new SnapshotStore(db, "native");
    const base = store.getInfo("default", "base");
    assert.deepEqual([base.info.created, base.info.updated], [1796606078549000000n, 1796606078549000000n]);
    assert.deepEqual(base.usage, { size: 8192, inodes: 2 });
    const child = store.getInfo("default", "child").info;
    assert.deepEqual([child.parent, child.created, child.updated], [
      "base",
      1796606079000000000n,
      1796606079001000000n,
    ]);
    assert.deepEqual(store.getSnapshot("default", "child").parentIds, [String(parent)]);
  } finally {
    db.close();
  }
});
