import assert from "node:assert/strict";
import { join } from "node:path";
import { realtimeNanos } from "../../../ffi/clock.ts";
import { BerthError, type ErrorKind } from "../../base/errors.ts";
import { MetadataDB } from "../metadata/db.ts";
import { type ImageInit, ImageStore } from "./mod.ts";
import { MIGRATIONS } from "./store.ts";

async function withStore(fn: (s: ImageStore) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-images-" });
  const db = new MetadataDB(join(dir, "meta.db"));
  try {
    await fn(new ImageStore(db));
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejectsWith(p: Promise<unknown>, kind: ErrorKind, re?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof BerthError, String(err));
    assert.equal(err.kind, kind, err.message);
    if (re) assert.match(err.message, re);
    return true;
  });
}

const INDEX = "application/vnd.oci.image.index.v1+json";
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const dg = (c: string) => "sha256:" + c.repeat(64);

function image(name: string, over: Partial<ImageInit> = {}): ImageInit {
  return {
    name,
    labels: {},
    target: { mediaType: INDEX, digest: dg("a"), size: 100, annotations: {} },
    ...over,
  };
}

Deno.test("ImageStore creates, gets and refuses duplicate images", async () => {
  await withStore(async (s) => {
    const created = await s.create(
      "default",
      image("docker.io/library/busybox:latest", { labels: { a: "1" } }),
    );
    assert.equal(created.target.digest, dg("a"));
    const got = await s.get("default", "docker.io/library/busybox:latest");
    assert.deepEqual(got, created);
    await rejectsWith(s.create("default", image("docker.io/library/busybox:latest")), "already_exists");
    await rejectsWith(s.get("other", "docker.io/library/busybox:latest"), "not_found");
  });
});

Deno.test("ImageStore.create() validates name, digest, size and media type", async () => {
  await withStore(async (s) => {
    await rejectsWith(s.create("default", image("")), "invalid_argument", /name/);
    const t = image("x").target;
    await rejectsWith(
      s.create("default", image("x", { target: { ...t, digest: "sha256:abc" } })),
      "invalid_argument",
    );
    await rejectsWith(
      s.create("default", image("x", { target: { ...t, size: 0 } })),
      "invalid_argument",
      /size/,
    );
    await rejectsWith(
      s.create("default", image("x", { target: { ...t, mediaType: "" } })),
      "invalid_argument",
    );
    await rejectsWith(s.create("default", image("x", { labels: { "": "v" } })), "invalid_argument");
  });
});

Deno.test("ImageStore.list() filters by name, target and labels", async () => {
  await withStore(async (s) => {
    await s.create("default", image("a:1", { labels: { env: "prod" } }));
    await s.create(
      "default",
      image("b:1", { target: { mediaType: MANIFEST, digest: dg("b"), size: 5, annotations: { x: "y" } } }),
    );
    await s.create("default", image("c:1", { labels: { env: "dev" } }));
    await s.create("other", image("d:1"));
    const names = async (filters: string[]) => (await s.list("default", { filters })).map((i) => i.name);
    assert.deepEqual(await names([]), ["a:1", "b:1", "c:1"]);
    assert.deepEqual(await names(["name==b:1"]), ["b:1"]);
    assert.deepEqual(await names([`target.digest==${dg("b")}`]), ["b:1"]);
    assert.deepEqual(await names(["target.mediatype~=index"]), ["a:1", "c:1"]);
    assert.deepEqual(await names(["labels.env==prod", "labels.env==dev"]), ["a:1", "c:1"]);
    assert.deepEqual(await names(["annotations.x==y"]), ["b:1"]);
    assert.deepEqual(await names(["name~=^[ab]:,labels.env"]), ["a:1"]);
  });
});

Deno.test("ImageStore.update() applies field paths and keeps the creation time", async () => {
  await withStore(async (s) => {
    const created = await s.create("default", image("a", { labels: { k1: "v1", k2: "v2" } }));
    await new Promise((r) => setTimeout(r, 5));
    let u = await s.update("default", image("a", { labels: { k1: "new", k3: "v3" } }), {
      fieldpaths: ["labels.k1"],
    });
    assert.deepEqual(u.labels, { k1: "new", k2: "v2" });
    assert.equal(u.target.digest, dg("a"));
    assert.deepEqual(u.createdAt, created.createdAt);
    assert.ok(u.updatedAt > created.updatedAt);
    const t2 = { mediaType: MANIFEST, digest: dg("c"), size: 7, annotations: { an: "1" } };
    u = await s.update("default", image("a", { target: t2 }), { fieldpaths: ["target"] });
    assert.deepEqual(u.target, t2);
    assert.deepEqual(u.labels, { k1: "new", k2: "v2" });
    u = await s.update("default", image("a", { target: { ...t2, annotations: { an: "2", b: "3" } } }), {
      fieldpaths: ["annotations.an"],
    });
    assert.deepEqual(u.target.annotations, { an: "2" });
    u = await s.update("default", image("a", { labels: { only: "this" } }));
    assert.deepEqual(u.labels, { only: "this" });
    assert.equal(u.target.digest, dg("a"));
    assert.deepEqual(await s.get("default", "a"), u);
    await rejectsWith(s.update("default", image("a"), { fieldpaths: ["name"] }), "invalid_argument");
    await rejectsWith(s.update("default", image("missing")), "not_found");
    await rejectsWith(s.update("default", image("")), "invalid_argument");
  });
});

Deno.test("ImageStore.delete() removes an image, checking the target when asked", async () => {
  await withStore(async (s) => {
    await s.create("default", image("a"));
    await rejectsWith(s.delete("default", "a", { target: dg("f") }), "not_found", /has target/);
    await s.delete("default", "a", { target: dg("a") });
    await rejectsWith(s.get("default", "a"), "not_found");
    await rejectsWith(s.delete("default", "a"), "not_found");
  });
});

Deno.test("ImageStore records creation and update times in nanoseconds, between the calls' start and end", async () => {
  await withStore(async (s) => {
    const t0 = realtimeNanos();
    const created = await s.create("default", image("a"));
    const t1 = realtimeNanos();
    assert.ok(t0 <= created.createdAt && created.createdAt <= t1, `${t0} <= ${created.createdAt} <= ${t1}`);
    assert.equal(created.updatedAt, created.createdAt);
    assert.deepEqual(await s.get("default", "a"), created);
    const t2 = realtimeNanos();
    const updated = await s.update("default", image("a", { labels: { k: "v" } }));
    const t3 = realtimeNanos();
    assert.ok(t2 <= updated.updatedAt && updated.updatedAt <= t3);
    assert.equal(updated.createdAt, created.createdAt);
    assert.deepEqual(await s.list("default"), [updated]);
    assert.ok(
      [created.createdAt, updated.updatedAt].some((t) => t % 1_000_000n !== 0n),
      "whole milliseconds",
    );
  });
});

Deno.test("ImageStore turns the millisecond times of an older database into nanoseconds", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-images-" });
  const db = new MetadataDB(join(dir, "meta.db"));
  try {
    db.migrate("images", MIGRATIONS.slice(0, 1));
    db.sql.prepare("INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
      .run("default", "old", "{}", INDEX, dg("a"), 100, "{}", 1796606078549, 1796606079000);
    const img = await new ImageStore(db).get("default", "old");
    assert.deepEqual([img.createdAt, img.updatedAt, img.target.size], [
      1796606078549000000n,
      1796606079000000000n,
      100,
    ]);
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
