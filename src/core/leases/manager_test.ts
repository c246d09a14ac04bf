import assert from "node:assert/strict";
import { join } from "node:path";
import { realtimeNanos } from "../../../ffi/clock.ts";
import { BerthError, type ErrorKind } from "../../base/errors.ts";
import { MetadataDB } from "../metadata/db.ts";
import { MIGRATIONS } from "./manager.ts";
import { LeaseManager } from "./mod.ts";

async function withManager(fn: (lm: LeaseManager, db: MetadataDB) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-leases-" });
  const db = new MetadataDB(join(dir, "meta.db"));
  try {
    await fn(new LeaseManager(db), db);
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejectsWith(p: Promise<unknown>, kind: ErrorKind): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof BerthError && err.kind === kind);
}

const D = "sha256:" + "a".repeat(64);

Deno.test("LeaseManager creates, lists and deletes leases per namespace", async () => {
  await withManager(async (lm) => {
    const l = await lm.create("default", {
      id: "pull-1",
      labels: { "containerd.io/gc.expire": "2030-01-01T00:00:00Z" },
    });
    assert.equal(l.id, "pull-1");
    assert.equal(l.labels["containerd.io/gc.expire"], "2030-01-01T00:00:00Z");
    await rejectsWith(lm.create("default", { id: "pull-1" }), "already_exists");
    await lm.create("other", { id: "pull-1" });
    const gen = await lm.create("default");
    assert.match(gen.id, /^\d+-[A-Za-z0-9_-]+$/);
    assert.deepEqual((await lm.list("default")).map((x) => x.id).sort(), [gen.id, "pull-1"].sort());
    assert.deepEqual((await lm.list("default", { filters: ["id==pull-1"] })).map((x) => x.id), ["pull-1"]);
    assert.deepEqual(
      (await lm.list("default", { filters: ['labels."containerd.io/gc.expire"'] })).map((x) => x.id),
      ["pull-1"],
    );
    await lm.delete("default", "pull-1");
    await rejectsWith(lm.delete("default", "pull-1"), "not_found");
    assert.equal((await lm.list("other")).length, 1);
  });
});

Deno.test("LeaseManager tracks resources and drops them with the lease", async () => {
  await withManager(async (lm, db) => {
    await lm.create("default", { id: "l" });
    await lm.addResource("default", "l", { id: D, type: "content" });
    await lm.addResource("default", "l", { id: D, type: "content" }); // idempotent
    await lm.addResource("default", "l", { id: "ref-1", type: "ingests" });
    await lm.addResource("default", "l", { id: "key", type: "snapshots/overlayfs" });
    assert.deepEqual(await lm.listResources("default", "l"), [
      { id: D, type: "content" },
      { id: "ref-1", type: "ingests" },
      { id: "key", type: "snapshots/overlayfs" },
    ]);
    await lm.deleteResource("default", "l", { id: "ref-1", type: "ingests" });
    assert.equal((await lm.listResources("default", "l")).length, 2);
    await rejectsWith(lm.addResource("default", "l", { id: "x", type: "content" }), "invalid_argument");
    await rejectsWith(lm.addResource("default", "l", { id: "x", type: "snapshots" }), "invalid_argument");
    await rejectsWith(lm.addResource("default", "l", { id: "x", type: "bogus" }), "not_implemented");
    await rejectsWith(lm.addResource("default", "missing", { id: D, type: "content" }), "not_found");
    await rejectsWith(lm.listResources("other", "l"), "not_found");
    await lm.delete("default", "l");
    const left = db.sql.prepare("SELECT COUNT(*) AS n FROM lease_resources").get() as { n: number };
    assert.equal(Number(left.n), 0);
  });
});

Deno.test("LeaseManager records a lease's creation time in nanoseconds, between the call's start and end", async () => {
  await withManager(async (lm) => {
    const t0 = realtimeNanos();
    const l = await lm.create("default", { id: "l1" });
    const t1 = realtimeNanos();
    assert.ok(t0 <= l.createdAt && l.createdAt <= t1, `${t0} <= ${l.createdAt} <= ${t1}`);
    assert.deepEqual(await lm.get("default", "l1"), l);
    assert.deepEqual(await lm.list("default"), [l]);
  });
});

Deno.test("LeaseManager turns the millisecond times of an older database into nanoseconds", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-leases-" });
  const db = new MetadataDB(join(dir, "meta.db"));
  try {
    db.migrate("leases", MIGRATIONS.slice(0, 1));
    db.sql.prepare("INSERT INTO leases VALUES (?, ?, ?, ?)").run("default", "old", 1796606078549, "{}");
    assert.equal((await new LeaseManager(db).get("default", "old")).createdAt, 1796606078549000000n);
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
