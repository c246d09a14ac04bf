import assert from "node:assert/strict";
import { join } from "node:path";
import { realtimeNanos } from "../../../ffi/clock.ts";
import { BerthError, type ErrorKind } from "../../base/errors.ts";
import { MetadataDB } from "../metadata/db.ts";
import { NamespaceStore } from "../namespaces/mod.ts";
import { ContentStore, type ContentStoreOptions } from "./mod.ts";
import { digestOf } from "../../oci/digest_of.ts";
import { MIGRATIONS } from "./store.ts";
import { blob, contentStoreSuite, readAll } from "./testsuite.ts";

async function withStore(
  fn: (cs: ContentStore, root: string, db: MetadataDB) => Promise<void>,
  options?: ContentStoreOptions,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-content-" });
  const db = new MetadataDB(join(dir, "meta.db"));
  try {
    await fn(new ContentStore(join(dir, "content"), db, options), join(dir, "content"), db);
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

async function put(
  cs: ContentStore,
  ns: string,
  ref: string,
  data: Uint8Array,
  labels?: Record<string, string>,
) {
  const w = await cs.writer(ns, ref, { total: data.length, expected: digestOf(data) });
  try {
    await w.write(data);
    return await w.commit(data.length, digestOf(data), { labels });
  } finally {
    await w.close();
  }
}

Deno.test("ContentStore writes, commits and reads back a blob", async () => {
  await withStore(async (cs, root) => {
    const data = blob(3 * 1024 * 1024 + 17);
    const d = digestOf(data);
    const w = await cs.writer("default", "ref-1", { total: data.length });
    await w.write(data.subarray(0, 1000));
    await w.write(data.subarray(1000));
    assert.equal(w.digest(), d);
    assert.equal(w.status().offset, data.length);
    const info = await w.commit(data.length, d, { labels: { a: "1" } });
    assert.equal(info.digest, d);
    assert.equal(info.size, data.length);
    assert.deepEqual((await cs.info("default", d)).labels, { a: "1" });
    assert.deepEqual(await readAll(cs, "default", d), data);
    const chunks: number[] = [];
    for await (const c of cs.read("default", d)) chunks.push(c.length);
    assert.ok(chunks.every((n) => n <= 1 << 20) && chunks.length === 4, String(chunks));
    assert.deepEqual(await readAll(cs, "default", d, { offset: 10, size: 20 }), data.subarray(10, 30));
    assert.deepEqual(
      await readAll(cs, "default", d, { offset: data.length - 5, size: 100 }),
      data.subarray(-5),
    );
    assert.equal((await Deno.stat(join(root, "blobs/sha256", d.slice(7)))).mode! & 0o777, 0o444);
    assert.deepEqual([...Deno.readDirSync(join(root, "ingest"))], []);
    await rejectsWith(readAll(cs, "default", d, { offset: data.length + 1 }), "invalid_argument");
  });
});

Deno.test("ContentStore.commit() rejects a blob whose digest does not match and commits nothing", async () => {
  await withStore(async (cs) => {
    const data = blob(256);
    const wrong = digestOf(blob(256, 2));
    const w = await cs.writer("default", "ref");
    await w.write(data);
    await rejectsWith(
      w.commit(data.length, wrong),
      "failed_precondition",
      new RegExp(`${digestOf(data)}.*${wrong}`),
    );
    await rejectsWith(cs.info("default", digestOf(data)), "not_found");
    assert.deepEqual(await cs.walk("default"), []);
    // The ingest survives for a retry.
    const w2 = await cs.writer("default", "ref");
    assert.equal(w2.status().offset, 256);
    await rejectsWith(
      w2.commit(100, ""),
      "failed_precondition",
      /size 256 does not match the expected size 100/,
    );
    const w3 = await cs.writer("default", "ref");
    await w3.commit(256, "");
    assert.equal((await cs.info("default", digestOf(data))).size, 256);
  });
});

Deno.test("ContentStore.writer() resumes an abandoned ingest from its offset", async () => {
  await withStore(async (cs) => {
    const data = blob(100_000);
    const d = digestOf(data);
    const w1 = await cs.writer("default", "resume", { total: data.length, expected: d });
    await w1.write(data.subarray(0, 40_000));
    await w1.close(); // the client went away
    const st = await cs.status("default", "resume");
    assert.equal(st.offset, 40_000);
    assert.equal(st.total, data.length);
    assert.equal(st.expected, d);
    const w2 = await cs.writer("default", "resume", { total: data.length, expected: d });
    assert.equal(w2.status().offset, 40_000);
    assert.equal(w2.digest(), digestOf(data.subarray(0, 40_000)));
    await w2.write(data.subarray(40_000));
    await w2.commit(data.length, d);
    assert.deepEqual(await readAll(cs, "default", d), data);
    await rejectsWith(cs.status("default", "resume"), "not_found");
  });
});

Deno.test("ContentStore.writer() truncate(0) restarts the ingest", async () => {
  await withStore(async (cs) => {
    const w = await cs.writer("default", "t");
    await w.write(blob(10, 3));
    await w.truncate(0);
    await rejectsWith(w.truncate(5), "invalid_argument");
    const data = blob(20, 4);
    await w.write(data);
    const info = await w.commit(20, digestOf(data));
    assert.equal(info.digest, digestOf(data));
  });
});

Deno.test("ContentStore.writer() answers unavailable once it has waited out a ref a live writer keeps", async () => {
  await withStore(async (cs) => {
    const w = await cs.writer("default", "busy");
    const start = performance.now();
    await rejectsWith(
      cs.writer("default", "busy"),
      "unavailable",
      /^Ref busy locked for 0\.\ds \(since \S+Z\)$/,
    );
    // Like containerd's local store, which retries for about a second before it gives up.
    assert.ok(performance.now() - start >= 100, `gave up after ${performance.now() - start} ms`);
    // Another namespace has its own refs.
    const other = await cs.writer("other", "busy");
    await other.close();
    await w.close();
    const again = await cs.writer("default", "busy");
    await again.close();
  }, { lockWaitMs: 100 });
});

Deno.test("ContentStore.writer() takes over a ref the moment the previous writer's close() ends", async () => {
  await withStore(async (cs) => {
    const data = blob(100);
    const w1 = await cs.writer("default", "r", { total: 100, expected: digestOf(data) });
    await w1.write(data.subarray(0, 40));
    // The client ended its stream: the writer is still flushing when the client opens the ref again.
    const closing = w1.close();
    const w2 = await cs.writer("default", "r", { total: 100, expected: digestOf(data) });
    await closing;
    assert.equal(w2.status().offset, 40);
    await w2.write(data.subarray(40));
    assert.equal((await w2.commit(100, digestOf(data))).digest, digestOf(data));
  });
});

Deno.test("ContentStore.writer() resumes an ingest under a different expected digest and commits against it", async () => {
  await withStore(async (cs) => {
    const a = blob(1000, 1);
    const b = blob(1000, 2);
    const w1 = await cs.writer("default", "r", { total: 1000, expected: digestOf(a) });
    await w1.write(a.subarray(0, 400));
    await w1.close();
    const w2 = await cs.writer("default", "r", { total: 1000, expected: digestOf(b) });
    assert.equal(w2.status().offset, 400);
    assert.equal(w2.status().expected, digestOf(b));
    assert.equal((await cs.status("default", "r")).expected, digestOf(b));
    await w2.write(a.subarray(400));
    await rejectsWith(
      w2.commit(1000, digestOf(b)),
      "failed_precondition",
      /does not match the expected digest/,
    );
    // The failed commit kept the ingest, which still expects b.
    const st = await cs.status("default", "r");
    assert.deepEqual([st.offset, st.expected], [1000, digestOf(b)]);
    const w3 = await cs.writer("default", "r", { expected: digestOf(b) });
    await w3.truncate(0);
    await w3.write(b);
    assert.equal((await w3.commit(1000, digestOf(b))).digest, digestOf(b));
    await rejectsWith(cs.info("default", digestOf(a)), "not_found");
  });
});

Deno.test("ContentStore records commit and update times in nanoseconds, between the calls' start and end", async () => {
  await withStore(async (cs) => {
    const data = blob(10);
    const d = digestOf(data);
    const beforeCommit = realtimeNanos();
    const created = await put(cs, "default", "r", data, { a: "1" });
    const afterCommit = realtimeNanos();
    assert.equal(typeof created.createdAt, "bigint");
    assert.ok(beforeCommit <= created.createdAt && created.createdAt <= afterCommit);
    assert.equal(created.updatedAt, created.createdAt);
    assert.deepEqual(await cs.info("default", d), created);
    const beforeUpdate = realtimeNanos();
    const updated = await cs.update("default", { digest: d, labels: { a: "2" } });
    const afterUpdate = realtimeNanos();
    assert.ok(beforeUpdate <= updated.updatedAt && updated.updatedAt <= afterUpdate);
    assert.equal(updated.createdAt, created.createdAt);
    assert.deepEqual(await cs.walk("default"), [updated]);
    const times = [created.createdAt, updated.updatedAt];
    assert.ok(times.some((t) => t % 1_000_000n !== 0n), "times fall on whole milliseconds");
  });
});

Deno.test("ContentStore reports an ingest's start and update times in nanoseconds, live and after resuming", async () => {
  await withStore(async (cs) => {
    const data = blob(100);
    const t0 = realtimeNanos();
    const w1 = await cs.writer("default", "r", { total: 100 });
    const t1 = realtimeNanos();
    let st = w1.status();
    assert.ok(t0 <= st.startedAt && st.startedAt <= t1);
    assert.equal(st.updatedAt, st.startedAt);
    const t2 = realtimeNanos();
    await w1.write(data.subarray(0, 30));
    const t3 = realtimeNanos();
    st = w1.status();
    assert.ok(t2 <= st.updatedAt && st.updatedAt <= t3);
    // Another caller asking while the writer is live gets the writer's exact times, not file times.
    assert.deepEqual(await cs.status("default", "r"), st);
    assert.deepEqual(await cs.listStatuses("default"), [st]);
    await w1.close();
    assert.deepEqual(await cs.status("default", "r"), st);
    const w2 = await cs.writer("default", "r", { total: 100 });
    assert.deepEqual(w2.status(), st);
    await w2.close();
    assert.ok([st.startedAt, st.updatedAt].some((t) => t % 1_000_000n !== 0n), "whole milliseconds");
  });
});

Deno.test("An ingest makes its namespace exist, and keeps it from being deleted, until committed or aborted", async () => {
  await withStore(async (cs, _root, db) => {
    const namespaces = new NamespaceStore(db);
    const names = () => namespaces.list().map((n) => n.name);
    const w = await cs.writer("fresh", "r");
    assert.deepEqual(names(), ["fresh"]);
    assert.deepEqual(namespaces.get("fresh"), { name: "fresh", labels: {} });
    assert.throws(
      () => namespaces.delete("fresh"),
      /Namespace "fresh" must be empty, but it still has content_ingests/,
    );
    await w.write(blob(10));
    await w.close();
    assert.deepEqual(names(), ["fresh"]);
    await cs.abort("fresh", "r");
    assert.deepEqual(names(), []);
    assert.throws(() => namespaces.get("fresh"), /not found/);

    const data = blob(10, 2);
    const w2 = await cs.writer("fresh", "r2");
    await w2.write(data);
    await w2.commit(10, digestOf(data));
    assert.deepEqual(await cs.listStatuses("fresh"), []);
    assert.throws(() => namespaces.delete("fresh"), /still has content_blobs$/);
    await cs.delete("fresh", digestOf(data));
    assert.deepEqual(names(), []);
  });
});

Deno.test("ContentStore finds the ingests on disk when it opens, drops records whose folder is gone and nameless folders", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-content-" });
  try {
    const root = join(dir, "content");
    const first = new MetadataDB(join(dir, "first.db"));
    const cs1 = new ContentStore(root, first);
    const w = await cs1.writer("left", "r", { total: 100 });
    await w.write(blob(30));
    await w.close();
    first.close();
    // A folder a crash cut off before its namespace and ref were written: nobody can name it.
    await Deno.mkdir(join(root, "ingest", "cut-off"));
    await Deno.writeTextFile(join(root, "ingest", "cut-off", "data"), "partial");
    // A database that has never heard of the ingest (as one from before ingests were recorded), with a
    // record of an ingest whose folder is gone (a crash between removing the folder and the record).
    const db = new MetadataDB(join(dir, "meta.db"));
    try {
      new ContentStore(root, db);
      db.sql.prepare("INSERT INTO content_ingests (namespace, ref) VALUES (?, ?)").run("gone", "r");
      const cs = new ContentStore(root, db);
      assert.deepEqual((await cs.listStatuses("left")).map((s) => [s.ref, s.offset, s.total]), [[
        "r",
        30,
        100,
      ]]);
      assert.deepEqual(new NamespaceStore(db).list().map((n) => n.name), ["left"]);
      await cs.abort("left", "r");
      await rejectsWith(cs.abort("left", "r"), "not_found");
      assert.deepEqual([...Deno.readDirSync(join(root, "ingest"))], [], "the cut-off folder is removed");
    } finally {
      db.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ContentStore.abort() drops the record of an ingest whose folder is gone", async () => {
  await withStore(async (cs, _root, db) => {
    db.sql.prepare("INSERT INTO content_ingests (namespace, ref) VALUES (?, ?)").run("ns", "orphan");
    await cs.abort("ns", "orphan");
    assert.deepEqual(new NamespaceStore(db).list(), []);
    await rejectsWith(cs.abort("ns", "orphan"), "not_found");
  });
});

Deno.test("ContentStore turns the millisecond times of an older database into nanoseconds", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-content-" });
  const db = new MetadataDB(join(dir, "meta.db"));
  try {
    // The content table as the first version of Berth made and filled it.
    db.migrate("content", MIGRATIONS.slice(0, 1));
    const data = blob(10);
    db.sql.prepare("INSERT INTO content_blobs VALUES (?, ?, ?, ?, ?, ?)").run(
      "default",
      digestOf(data),
      10,
      1796606078549,
      1796606079000,
      '{"a":"1"}',
    );
    const cs = new ContentStore(join(dir, "content"), db);
    assert.deepEqual(await cs.info("default", digestOf(data)), {
      digest: digestOf(data),
      size: 10,
      createdAt: 1796606078549000000n,
      updatedAt: 1796606079000000000n,
      labels: { a: "1" },
    });
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ContentStore.commit() reports a blob the namespace already holds", async () => {
  await withStore(async (cs) => {
    const data = blob(256);
    await put(cs, "default", "c1", data);
    await rejectsWith(cs.writer("default", "c2", { expected: digestOf(data) }), "already_exists");
    for (const expected of [digestOf(data), ""]) {
      const w = await cs.writer("default", "c3");
      await w.write(data);
      await rejectsWith(w.commit(256, expected), "already_exists");
      await w.close();
    }
    assert.equal((await cs.walk("default")).length, 1);
    assert.deepEqual(await cs.listStatuses("default"), []);
  });
});

Deno.test("ContentStore.update() sets, replaces and removes labels", async () => {
  await withStore(async (cs) => {
    const data = blob(10);
    const d = digestOf(data);
    const created = await put(cs, "default", "r", data, { a: "1", b: "2" });
    await new Promise((r) => setTimeout(r, 5));
    let info = await cs.update("default", { digest: d, labels: { a: "x", c: "3" } }, {
      fieldpaths: ["labels.a"],
    });
    assert.deepEqual(info.labels, { a: "x", b: "2" });
    assert.ok(info.updatedAt > created.updatedAt);
    info = await cs.update("default", { digest: d, labels: {} }, { fieldpaths: ["labels.b"] });
    assert.deepEqual(info.labels, { a: "x" });
    info = await cs.update("default", { digest: d, labels: { z: "9" } });
    assert.deepEqual((await cs.info("default", d)).labels, { z: "9" });
    await rejectsWith(
      cs.update("default", { digest: d, labels: {} }, { fieldpaths: ["size"] }),
      "invalid_argument",
    );
    await rejectsWith(cs.update("other", { digest: d, labels: {} }), "not_found");
    await rejectsWith(
      cs.update("default", { digest: d, labels: { k: "v".repeat(5000) } }),
      "invalid_argument",
    );
  });
});

Deno.test("ContentStore.walk() filters by digest and labels", async () => {
  await withStore(async (cs) => {
    const a = await put(cs, "default", "a", blob(10, 1), { "containerd.io/gc.root": "x", kind: "layer" });
    const b = await put(cs, "default", "b", blob(10, 2), { kind: "config" });
    await put(cs, "default", "c", blob(10, 3));
    const digests = async (filters: string[]) =>
      (await cs.walk("default", { filters })).map((i) => i.digest).sort();
    assert.equal((await digests([])).length, 3);
    assert.deepEqual(await digests(["labels.kind==layer"]), [a.digest]);
    assert.deepEqual(await digests(['labels."containerd.io/gc.root"']), [a.digest]);
    assert.deepEqual(
      await digests(["labels.kind==layer", "labels.kind==config"]),
      [a.digest, b.digest].sort(),
    );
    assert.deepEqual(await digests([`digest==${b.digest}`]), [b.digest]);
    await rejectsWith(cs.walk("default", { filters: ["labels.=="] }), "invalid_argument");
  });
});

Deno.test("ContentStore keeps namespaces apart and stores a shared blob once", async () => {
  await withStore(async (cs, root) => {
    const data = blob(1000);
    const d = digestOf(data);
    await put(cs, "ns1", "r", data);
    await rejectsWith(cs.info("ns2", d), "not_found");
    await rejectsWith(readAll(cs, "ns2", d), "not_found");
    assert.deepEqual(await cs.walk("ns2"), []);
    // Shared policy: ns2's writer is complete at once, without sending bytes.
    const w = await cs.writer("ns2", "r", { total: 1000, expected: d });
    assert.equal(w.status().offset, 1000);
    assert.equal(w.digest(), d);
    await w.commit(1000, d);
    assert.equal((await cs.info("ns2", d)).size, 1000);
    assert.deepEqual([...Deno.readDirSync(join(root, "blobs/sha256"))].map((e) => e.name), [d.slice(7)]);
    // Deleting from one namespace keeps the blob for the other; the last delete removes the file.
    await cs.delete("ns1", d);
    await rejectsWith(cs.info("ns1", d), "not_found");
    assert.deepEqual(await readAll(cs, "ns2", d), data);
    await cs.delete("ns2", d);
    await assert.rejects(Deno.stat(join(root, "blobs/sha256", d.slice(7))), Deno.errors.NotFound);
    await rejectsWith(cs.delete("ns2", d), "not_found");
  });
});

Deno.test("ContentStore shared writer copies the blob before appending (cross-namespace append)", async () => {
  await withStore(async (cs) => {
    const data = blob(1000);
    const d = digestOf(data);
    await put(cs, "ns1", "r", data);
    const extra = new TextEncoder().encode("appended bytes");
    const all = new Uint8Array([...data, ...extra]);
    const w = await cs.writer("ns2", "r", { total: 1000, expected: d });
    await w.write(extra);
    await w.commit(all.length, digestOf(all));
    assert.deepEqual(await readAll(cs, "ns2", digestOf(all)), all);
    await rejectsWith(cs.info("ns2", d), "not_found");
    assert.equal((await cs.info("ns1", d)).size, 1000);
  });
});

Deno.test("ContentStore isolated policy makes each namespace write its own bytes", async () => {
  await withStore(async (cs) => {
    const data = blob(500);
    const d = digestOf(data);
    await put(cs, "ns1", "r", data);
    const w = await cs.writer("ns2", "r", { total: 500, expected: d });
    assert.equal(w.status().offset, 0);
    await w.write(data);
    await w.commit(500, d);
    assert.equal((await cs.info("ns2", d)).size, 500);
  }, { sharing: "isolated" });
});

Deno.test("ContentStore lists and aborts ingests per namespace", async () => {
  await withStore(async (cs) => {
    for (const ref of ["pull-a", "pull-b", "push-c"]) {
      const w = await cs.writer("default", ref, { total: 10 });
      await w.write(blob(3));
      await w.close();
    }
    const w = await cs.writer("other", "pull-a");
    await w.close();
    const refs = async (filters: string[]) =>
      (await cs.listStatuses("default", { filters })).map((s) => s.ref);
    assert.deepEqual(await refs([]), ["pull-a", "pull-b", "push-c"]);
    assert.deepEqual(await refs(["ref~=^pull-"]), ["pull-a", "pull-b"]);
    const st = await cs.status("default", "pull-b");
    assert.equal(st.offset, 3);
    assert.equal(st.total, 10);
    await cs.abort("default", "pull-b");
    await rejectsWith(cs.status("default", "pull-b"), "not_found");
    await rejectsWith(cs.abort("default", "pull-b"), "not_found");
    assert.deepEqual(await refs([]), ["pull-a", "push-c"]);
    assert.deepEqual((await cs.listStatuses("other")).map((s) => s.ref), ["pull-a"]);
  });
});

Deno.test("ContentStore rejects malformed digests and empty refs", async () => {
  await withStore(async (cs) => {
    await rejectsWith(cs.info("default", "sha256:xyz"), "invalid_argument");
    await rejectsWith(cs.writer("default", ""), "invalid_argument");
    await rejectsWith(cs.writer("default", "r", { expected: "md5:abc" }), "invalid_argument");
    const w = await cs.writer("default", "r");
    await rejectsWith(w.commit(0, "nope"), "invalid_argument");
    await rejectsWith(w.write(blob(1)), "failed_precondition", /closed/);
  });
});

Deno.test("ContentStore commits sha512 content when the writer expects it", async () => {
  await withStore(async (cs) => {
    const data = blob(64);
    const d = digestOf(data, "sha512");
    const w = await cs.writer("default", "r", { expected: d });
    await w.write(data);
    assert.equal(w.digest(), d);
    await w.commit(64, d);
    assert.deepEqual(await readAll(cs, "default", d), data);
  });
});

contentStoreSuite("local", (root, db, options) => new ContentStore(root, db, options));

Deno.test("ContentStore.abort() removes an ingest whose writer is still closing", async () => {
  // containerd's client closes a writer and calls Abort without waiting for the server's close, which
  // still renames the ingest's `updatedat` into place: the abort must not fail on the file it finds.
  await withStore(async (cs) => {
    for (let i = 0; i < 40; i++) {
      const ref = `closing-${i}`;
      const w = await cs.writer("ns", ref, {});
      await w.write(new Uint8Array(256));
      const closing = w.close();
      await Promise.all([cs.abort("ns", ref), closing]);
      await rejectsWith(cs.status("ns", ref), "not_found");
    }
  });
});
