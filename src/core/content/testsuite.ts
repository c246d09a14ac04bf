/**
 * One conformance suite for the ContentStore over every backend, after containerd's
 * core/content/testsuite: each case gets a fresh database and root, and is cleaned up even on failure.
 * Use: `contentStoreSuite("local", (root, db, options) => new ContentStore(root, db, options))` in a
 * _test.ts. What only the local folder can show (its files, their modes) stays in store_test.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type ErrorKind, errorKind } from "../../base/errors.ts";
import { digestOf } from "../../oci/digest_of.ts";
import { MetadataDB } from "../metadata/db.ts";
import type { ContentStore, ContentStoreOptions } from "./store.ts";

export type ContentStoreFactory = (
  root: string,
  db: MetadataDB,
  options: ContentStoreOptions,
) => ContentStore | Promise<ContentStore>;

interface Ctx {
  readonly cs: ContentStore;
  readonly db: MetadataDB;
}

type Case = (ctx: Ctx) => Promise<void>;

const NS = "testsuite";
const OTHER = "testsuite-other";

/** `size` pseudo-random bytes, the same for the same seed. */
export function blob(size: number, seed = 1): Uint8Array {
  const b = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** The whole of what `read` streams. */
export async function readAll(
  cs: ContentStore,
  ns: string,
  digest: string,
  opts = {},
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of cs.read(ns, digest, opts)) parts.push(c);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) out.set(p, (off += p.length) - p.length);
  return out;
}

async function rejectsWith(p: Promise<unknown>, kind: ErrorKind): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.equal(errorKind(err), kind, `expected ${kind}, got ${String(err)}`);
    assert.match((err as Error).message, /^[A-Z]/);
    return true;
  });
}

async function put(cs: ContentStore, ns: string, ref: string, data: Uint8Array) {
  const w = await cs.writer(ns, ref, { total: data.length, expected: digestOf(data) });
  try {
    await w.write(data);
    return await w.commit(data.length, digestOf(data));
  } finally {
    await w.close();
  }
}

/** Deletes the blob from every namespace given, then lets the store sweep its backend. */
async function forget(cs: ContentStore, digest: string, namespaces: readonly string[]): Promise<void> {
  for (const ns of namespaces) cs.deleteSync(ns, digest);
  await cs.sweep();
}

const cases: Record<string, Case> = {
  "writes in parts, commits, and reads back whole, by range and at random": async ({ cs }) => {
    const data = blob(3 * 1024 * 1024 + 17);
    const d = digestOf(data);
    const w = await cs.writer(NS, "ref-1", { total: data.length });
    await w.write(data.subarray(0, 1000));
    await w.write(data.subarray(1000));
    assert.equal(w.digest(), d);
    assert.equal(w.status().offset, data.length);
    const info = await w.commit(data.length, d, { labels: { a: "1" } });
    await w.close();
    assert.deepEqual([info.digest, info.size, info.labels], [d, data.length, { a: "1" }]);
    assert.deepEqual(await readAll(cs, NS, d), data);
    assert.deepEqual(await readAll(cs, NS, d, { offset: 5, size: 10 }), data.subarray(5, 15));
    assert.deepEqual(await readAll(cs, NS, d, { offset: data.length - 3, size: 100 }), data.subarray(-3));
    const chunks: number[] = [];
    for await (const c of cs.read(NS, d, { chunkSize: 1 << 20 })) chunks.push(c.length);
    assert.ok(chunks.every((n) => n <= 1 << 20));
    await rejectsWith(readAll(cs, NS, d, { offset: data.length + 1 }), "invalid_argument");
    const ra = await cs.readerAt(NS, d);
    try {
      const buf = new Uint8Array(100);
      assert.equal(await ra.readAt(buf, 2_000_000), 100);
      assert.deepEqual(buf, data.subarray(2_000_000, 2_000_100));
      assert.equal(await ra.readAt(buf, data.length), 0);
    } finally {
      ra.close();
    }
    assert.deepEqual(await cs.listStatuses(NS), []);
  },

  "refuses a commit of the wrong digest or size, and keeps the ingest": async ({ cs }) => {
    const data = blob(256);
    const w = await cs.writer(NS, "bad", { total: 256 });
    await w.write(data);
    await rejectsWith(w.commit(256, digestOf(blob(256, 2))), "failed_precondition");
    await rejectsWith(cs.info(NS, digestOf(data)), "not_found");
    const again = await cs.writer(NS, "bad");
    await rejectsWith(again.commit(100, ""), "failed_precondition");
    assert.equal((await cs.status(NS, "bad")).offset, 256);
  },

  "resumes an abandoned ingest from its offset": async ({ cs }) => {
    const data = blob(100_000);
    const w = await cs.writer(NS, "resume", { total: data.length });
    await w.write(data.subarray(0, 40_000));
    await w.close();
    assert.equal((await cs.status(NS, "resume")).offset, 40_000);
    const w2 = await cs.writer(NS, "resume", { total: data.length });
    assert.equal(w2.status().offset, 40_000);
    await w2.write(data.subarray(40_000));
    assert.equal((await w2.commit(data.length, digestOf(data))).size, data.length);
    await w2.close();
    await rejectsWith(cs.status(NS, "resume"), "not_found");
  },

  "truncate(0) starts the ingest over": async ({ cs }) => {
    const w = await cs.writer(NS, "trunc");
    await w.write(blob(1000));
    await w.truncate(0);
    assert.equal(w.status().offset, 0);
    const data = blob(10, 3);
    await w.write(data);
    assert.equal((await w.commit(10, digestOf(data))).digest, digestOf(data));
  },

  "answers alreadyExists for a blob the namespace holds, at open and at commit": async ({ cs }) => {
    const data = blob(64);
    await put(cs, NS, "a", data);
    await rejectsWith(cs.writer(NS, "b", { expected: digestOf(data) }), "already_exists");
    const w = await cs.writer(NS, "c");
    await w.write(data);
    await rejectsWith(w.commit(64, digestOf(data)), "already_exists");
    assert.deepEqual(await cs.listStatuses(NS), []);
  },

  "keeps namespaces apart; a shared blob starts complete and costs no write": async ({ cs }) => {
    const data = blob(5000);
    const d = digestOf(data);
    await put(cs, NS, "a", data);
    await rejectsWith(cs.info(OTHER, d), "not_found");
    const w = await cs.writer(OTHER, "b", { total: data.length, expected: d });
    assert.equal(w.status().offset, data.length);
    assert.equal(w.digest(), d);
    await w.commit(data.length, d);
    assert.deepEqual(await readAll(cs, OTHER, d), data);
    // Held by one namespace still: the bytes stay.
    await forget(cs, d, [NS]);
    assert.deepEqual(await readAll(cs, OTHER, d), data);
    assert.equal(await cs.backend.blobSize(d), data.length);
    await forget(cs, d, [OTHER]);
    assert.equal(await cs.backend.blobSize(d), undefined);
  },

  "a shared writer that appends copies the blob first": async ({ cs }) => {
    const data = blob(3000);
    await put(cs, NS, "a", data);
    const w = await cs.writer(OTHER, "b", { expected: digestOf(data) });
    const more = blob(10, 9);
    await w.write(more);
    const whole = new Uint8Array([...data, ...more]);
    assert.equal(w.digest(), digestOf(whole));
    await w.commit(whole.length, digestOf(whole));
    assert.deepEqual(await readAll(cs, OTHER, digestOf(whole)), whole);
    await rejectsWith(cs.info(OTHER, digestOf(data)), "not_found");
  },

  "lists, reports and aborts ingests per namespace": async ({ cs }) => {
    for (const [ns, ref] of [[NS, "x1"], [NS, "x2"], [OTHER, "x1"]] as const) {
      const w = await cs.writer(ns, ref, { total: 10 });
      await w.write(blob(3));
      await w.close();
    }
    assert.deepEqual((await cs.listStatuses(NS)).map((s) => [s.ref, s.offset, s.total]), [
      ["x1", 3, 10],
      ["x2", 3, 10],
    ]);
    assert.deepEqual((await cs.listStatuses(NS, { filters: ["ref==x2"] })).map((s) => s.ref), ["x2"]);
    await cs.abort(NS, "x1");
    await rejectsWith(cs.status(NS, "x1"), "not_found");
    await rejectsWith(cs.abort(NS, "x1"), "not_found");
    assert.equal((await cs.status(OTHER, "x1")).offset, 3);
    // A fresh writer of an aborted ref starts from nothing.
    const w = await cs.writer(NS, "x1");
    assert.equal(w.status().offset, 0);
    await w.close();
  },

  "collection's abortSync drops the ingest's data, refusing one a writer has open": async ({ cs }) => {
    const w = await cs.writer(NS, "gc");
    await w.write(blob(7));
    assert.throws(() => cs.abortSync(NS, "gc"), (err) => errorKind(err) === "failed_precondition");
    await w.close();
    assert.deepEqual(cs.ingestsSync(NS).map((i) => [i.ref, i.writing]), [["gc", false]]);
    cs.abortSync(NS, "gc");
    await cs.sweep();
    assert.deepEqual(cs.ingestsSync(NS), []);
    assert.equal(await cs.backend.status({ namespace: NS, ref: "gc" }), undefined);
  },

  "updates labels and walks by filter": async ({ cs }) => {
    const a = await put(cs, NS, "a", blob(10, 1));
    const b = await put(cs, NS, "b", blob(10, 2));
    await cs.update(NS, { digest: a.digest, labels: { keep: "yes" } });
    assert.deepEqual((await cs.walk(NS, { filters: ["labels.keep==yes"] })).map((i) => i.digest), [a.digest]);
    assert.deepEqual(
      (await cs.walk(NS)).map((i) => i.digest).sort(),
      [a.digest, b.digest].sort(),
    );
  },
};

const isolatedCases: Record<string, Case> = {
  "an isolated store makes each namespace write its own bytes": async ({ cs }) => {
    const data = blob(2000);
    const d = digestOf(data);
    await put(cs, NS, "a", data);
    const w = await cs.writer(OTHER, "b", { total: data.length, expected: d });
    assert.equal(w.status().offset, 0);
    await w.write(data);
    await w.commit(data.length, d);
    assert.deepEqual(await readAll(cs, OTHER, d), data);
  },
};

/** Registers the suite's cases as Deno tests named `ContentStore (<name>): …`. */
export function contentStoreSuite(name: string, factory: ContentStoreFactory): void {
  const register = (all: Record<string, Case>, options: ContentStoreOptions) => {
    for (const [title, fn] of Object.entries(all)) {
      Deno.test(`ContentStore (${name}) ${title}`, async () => {
        const dir = await Deno.makeTempDir({ prefix: "berth-content-suite-" });
        const db = new MetadataDB(join(dir, "meta.db"));
        let cs: ContentStore | undefined;
        try {
          cs = await factory(join(dir, "content"), db, options);
          await fn({ cs, db });
        } finally {
          cs?.backend.close?.();
          db.close();
          await Deno.remove(dir, { recursive: true });
        }
      });
    }
  };
  register(cases, { sharing: "shared" });
  register(isolatedCases, { sharing: "isolated" });
}
