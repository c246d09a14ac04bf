import assert from "node:assert/strict";
import { ContentStore, digestOf } from "../content/mod.ts";
import { ImageStore } from "../images/mod.ts";
import { LeaseManager } from "../leases/mod.ts";
import { MetadataDB } from "../metadata/db.ts";
import { NativeSnapshotter } from "../snapshots/mod.ts";
import { GarbageCollector } from "./mod.ts";

const ns = "default";

async function setup() {
  const dir = await Deno.makeTempDir({ prefix: "berth-gc-" });
  const db = new MetadataDB(`${dir}/meta.db`);
  const content = new ContentStore(`${dir}/content`, db);
  const images = new ImageStore(db);
  const leases = new LeaseManager(db);
  const native = new NativeSnapshotter(`${dir}/native`, db);
  const gc = new GarbageCollector({
    content,
    images,
    leases,
    snapshotters: new Map([["native", native]]),
    namespaces: () => [ns],
  });
  const put = async (text: string, labels: Record<string, string> = {}) => {
    const bytes = new TextEncoder().encode(text);
    const digest = digestOf(bytes);
    const w = await content.writer(ns, `ref-${digest}`, { total: bytes.length, expected: digest });
    await w.write(bytes);
    await w.commit(bytes.length, digest, { labels });
    return digest;
  };
  const has = (digest: string) => content.info(ns, digest).then(() => true, () => false);
  const dispose = async () => {
    await native.close();
    db.close();
    await Deno.remove(dir, { recursive: true });
  };
  return { content, images, leases, native, gc, put, has, dispose };
}

Deno.test("GarbageCollector keeps what images reach through gc.ref labels and removes the rest", async () => {
  const t = await setup();
  try {
    const layer = await t.put("layer");
    await t.native.prepare(ns, "tmp-1");
    await t.native.commit(ns, "chain-1", { key: "tmp-1" });
    await t.native.prepare(ns, "tmp-2", { parent: "chain-1" });
    await t.native.commit(ns, "chain-2", { key: "tmp-2" });
    const config = await t.put("config", { "containerd.io/gc.ref.snapshot.native": "chain-2" });
    const manifest = await t.put("manifest", {
      "containerd.io/gc.ref.content.config": config,
      "containerd.io/gc.ref.content.l.0": layer,
    });
    const orphan = await t.put("orphan");
    await t.native.prepare(ns, "tmp-3");
    await t.native.commit(ns, "unreferenced", { key: "tmp-3" });
    await t.native.prepare(ns, "in-use");
    await t.images.create(ns, {
      name: "example.com/app:1",
      target: {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: manifest,
        size: 8,
        annotations: {},
      },
    });

    const res = await t.gc.scheduleAndWait();
    assert.equal(res.removedContent, 1);
    assert.equal(res.removedSnapshots, 1);
    for (const d of [manifest, config, layer]) assert.ok(await t.has(d), d);
    assert.equal(await t.has(orphan), false);
    const left: string[] = [];
    await t.native.walk(ns, (i) => {
      left.push(i.name);
    });
    assert.deepEqual(left.sort(), ["chain-1", "chain-2", "in-use"]);

    // Deleting the image makes the whole tree unreachable; the active snapshot stays.
    await t.images.delete(ns, "example.com/app:1");
    const res2 = await t.gc.scheduleAndWait();
    assert.equal(res2.removedContent, 3);
    assert.equal(res2.removedSnapshots, 2);
  } finally {
    await t.dispose();
  }
});

Deno.test("GarbageCollector honours leases and gc.root, and drops expired leases", async () => {
  const t = await setup();
  try {
    const leased = await t.put("leased");
    const rooted = await t.put("rooted", { "containerd.io/gc.root": "2026-11-27T00:00:00Z" });
    const expiring = await t.put("expiring");
    await t.leases.create(ns, { id: "keep" });
    await t.leases.addResource(ns, "keep", { type: "content", id: leased });
    await t.leases.create(ns, { id: "old", labels: { "containerd.io/gc.expire": "2000-01-01T00:00:00Z" } });
    await t.leases.addResource(ns, "old", { type: "content", id: expiring });

    const res = await t.gc.scheduleAndWait();
    assert.equal(res.expiredLeases, 1);
    assert.ok(await t.has(leased));
    assert.ok(await t.has(rooted));
    assert.equal(await t.has(expiring), false);
    assert.deepEqual((await t.leases.list(ns)).map((l) => l.id), ["keep"]);
  } finally {
    await t.dispose();
  }
});

Deno.test("GarbageCollector runs once at a time and reruns for requests made during a run", async () => {
  const t = await setup();
  try {
    await t.put("a");
    const [r1, r2] = await Promise.all([t.gc.scheduleAndWait(), t.gc.scheduleAndWait()]);
    assert.equal(r1.removedContent + r2.removedContent, 1);
  } finally {
    await t.dispose();
  }
});
