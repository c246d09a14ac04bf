import assert from "node:assert/strict";
import { ContainerStore } from "../containers/mod.ts";
import { ContentStore } from "../content/mod.ts";
import { digestOf } from "../../oci/digest_of.ts";
import { ImageStore } from "../images/mod.ts";
import { LeaseManager } from "../leases/mod.ts";
import { MetadataDB } from "../metadata/db.ts";
import { NativeSnapshotter, type Snapshotter } from "../snapshots/mod.ts";
import { unavailable } from "../../base/errors.ts";
import { GarbageCollector } from "./mod.ts";

const ns = "default";

async function setup() {
  const dir = await Deno.makeTempDir({ prefix: "berth-gc-" });
  const db = new MetadataDB(`${dir}/meta.db`);
  const content = new ContentStore(`${dir}/content`, db);
  const images = new ImageStore(db);
  const leases = new LeaseManager(db);
  const containers = new ContainerStore(db);
  const native = new NativeSnapshotter(`${dir}/native`, db);
  const gc = new GarbageCollector({
    db,
    content,
    images,
    leases,
    containers,
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
  const snapshots = async () => {
    const names: string[] = [];
    await native.walk(ns, (i) => {
      names.push(i.name);
    });
    return names.sort();
  };
  const dispose = async () => {
    await native.close();
    db.close();
    await Deno.remove(dir, { recursive: true });
  };
  return { db, dir, content, images, leases, containers, native, gc, put, has, snapshots, dispose };
}

const manifestTarget = (digest: string) => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest,
  size: 8,
  annotations: {},
});

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
    await t.native.prepare(ns, "in-use", { labels: { "containerd.io/gc.root": "2026-12-07T00:00:00Z" } });
    await t.images.create(ns, { name: "example.com/app:1", target: manifestTarget(manifest) });

    const res = await t.gc.collect();
    assert.equal(res.removedContent, 1);
    assert.equal(res.removedSnapshots, 1);
    for (const d of [manifest, config, layer]) assert.ok(await t.has(d), d);
    assert.equal(await t.has(orphan), false);
    assert.deepEqual(await t.snapshots(), ["chain-1", "chain-2", "in-use"]);

    // Deleting the image makes the whole tree unreachable; the gc.root active snapshot stays.
    await t.images.delete(ns, "example.com/app:1");
    const res2 = await t.gc.collect();
    assert.equal(res2.removedContent, 3);
    assert.equal(res2.removedSnapshots, 2);
    assert.deepEqual(await t.snapshots(), ["in-use"]);
    assert.deepEqual([...Deno.readDirSync(`${t.dir}/native/snapshots`)].length, 1, "folders deleted too");
  } finally {
    await t.dispose();
  }
});

Deno.test("GarbageCollector removes active and view snapshots nothing references, as containerd 1.6", async () => {
  const t = await setup();
  try {
    await t.native.prepare(ns, "tmp-1");
    await t.native.commit(ns, "base", { key: "tmp-1" });
    // A `ctr run` whose container was refused: its snapshot's lease is gone, no container names it.
    await t.native.prepare(ns, "orphan-active", { parent: "base" });
    await t.native.view(ns, "orphan-view", { parent: "base" });
    await t.native.prepare(ns, "leased-active", { parent: "base" });
    await t.leases.create(ns, { id: "run" });
    await t.leases.addResource(ns, "run", { type: "snapshots/native", id: "leased-active" });
    // A prepare still in progress (its row exists, the caller has no reference yet) is kept.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const native = t.native as unknown as { populate(dir: string, s: unknown): Promise<void> };
    const populate = native.populate.bind(t.native);
    native.populate = async (dir, s) => {
      await gate;
      await populate(dir, s);
    };
    const pending = t.native.prepare(ns, "in-flight", { parent: "base" });
    while (!(await t.snapshots()).includes("in-flight")) await new Promise((r) => setTimeout(r, 1));

    const res = await t.gc.collect();
    assert.equal(res.removedSnapshots, 2);
    assert.deepEqual(await t.snapshots(), ["base", "in-flight", "leased-active"]);
    release();
    await pending;

    await t.leases.delete(ns, "run");
    await t.gc.collect();
    assert.deepEqual(await t.snapshots(), []);
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

    const res = await t.gc.collect();
    assert.equal(res.expiredLeases, 1);
    assert.ok(await t.has(leased));
    assert.ok(await t.has(rooted));
    assert.equal(await t.has(expiring), false);
    assert.deepEqual((await t.leases.list(ns)).map((l) => l.id), ["keep"]);
  } finally {
    await t.dispose();
  }
});

Deno.test("GarbageCollector aborts an ingest once no lease holds it, and keeps open and unleased ones", async () => {
  const t = await setup();
  try {
    const ingest = async (ref: string, leased: boolean) => {
      const w = await t.content.writer(ns, ref, { leased });
      await w.write(new TextEncoder().encode("partial"));
      return w;
    };
    // A client's pull cut short: its lease held the ingest, then the lease went.
    await (await ingest("cut-short", true)).close();
    await t.leases.create(ns, { id: "pull" });
    await t.leases.addResource(ns, "pull", { type: "ingests", id: "cut-short" });
    await (await ingest("held", true)).close();
    await t.leases.create(ns, { id: "other" });
    await t.leases.addResource(ns, "other", { type: "ingests", id: "held" });
    await (await ingest("unleased", false)).close();
    const open = await ingest("open", true);

    await t.leases.delete(ns, "pull");
    await t.gc.collect();
    const refs = async () => (await t.content.listStatuses(ns)).map((s) => s.ref);
    assert.deepEqual(await refs(), ["held", "open", "unleased"]);
    assert.equal(await Deno.stat(`${t.dir}/content/ingest`).then(() => true), true);
    assert.equal(
      [...Deno.readDirSync(`${t.dir}/content/ingest`)].length,
      3,
      "the folder goes with the record",
    );

    await open.close();
    await t.leases.delete(ns, "other");
    await t.gc.collect();
    assert.deepEqual(await refs(), ["unleased"], "a day keeps an ingest no lease ever held");
  } finally {
    await t.dispose();
  }
});

Deno.test("GarbageCollector keeps a container's snapshot chain and the content its gc.ref labels name", async () => {
  const t = await setup();
  try {
    await t.native.prepare(ns, "tmp-1");
    await t.native.commit(ns, "base", { key: "tmp-1" });
    // A container's snapshot that is itself committed (not a root on its own account).
    await t.native.prepare(ns, "tmp-2", { parent: "base" });
    await t.native.commit(ns, "container-rootfs", { key: "tmp-2" });
    const checkpoint = await t.put("checkpoint");
    const labelled = await t.put("image-label");
    const manifest = await t.put("manifest");
    t.containers.create(ns, {
      id: "c1",
      labels: { "containerd.io/gc.ref.content.checkpoint": checkpoint },
      image: "",
      runtime: { name: "io.containerd.runc.v2" },
      spec: { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", value: new Uint8Array() },
      snapshotter: "native",
      snapshotKey: "container-rootfs",
      extensions: {},
      sandbox: "",
    });
    await t.images.create(ns, {
      name: "example.com/app:1",
      target: manifestTarget(manifest),
      labels: { "containerd.io/gc.ref.content.extra": labelled },
    });
    const ignored = await t.put("not-a-ref", {});
    await t.images.update(ns, {
      name: "example.com/app:1",
      target: manifestTarget(manifest),
      labels: { "containerd.io/gc.ref.content.extra": labelled, "containerd.io/gc.ref.contentious": ignored },
    });

    await t.gc.collect();
    assert.deepEqual(await t.snapshots(), ["base", "container-rootfs"]);
    for (const d of [checkpoint, labelled, manifest]) assert.ok(await t.has(d), d);
    assert.equal(await t.has(ignored), false, "gc.ref.contentious is not a content reference");

    t.containers.delete(ns, "c1");
    await t.gc.collect();
    assert.deepEqual(await t.snapshots(), []);
    assert.equal(await t.has(checkpoint), false);
  } finally {
    await t.dispose();
  }
});

Deno.test("GarbageCollector decides and removes in one step: a blob a lease holder saw after taking it stays", async () => {
  const t = await setup();
  try {
    await t.leases.create(ns, { id: "pull" });
    // A pull that finds a blob already present takes it into its lease, then relies on it. Whatever
    // the moment it does so during a collection, the collection must not remove it afterwards.
    for (let delay = 0; delay < 40; delay++) {
      // Several loose blobs, so that a collection that yields between removals has a window.
      const loose = await Promise.all([0, 1, 2, 3].map((i) => t.put(`blob ${delay}.${i}`)));
      const digest = loose.sort().at(-1)!;
      const run = t.gc.collect();
      for (let i = 0; i < delay; i++) await Promise.resolve();
      await t.leases.addResource(ns, "pull", { type: "content", id: digest });
      const seen = await t.has(digest);
      await run;
      assert.equal(await t.has(digest), seen, `lease taken after ${delay} microtasks`);
    }
  } finally {
    await t.dispose();
  }
});

Deno.test("GarbageCollector's own removals leave the database clean and are not reported as mutations", async () => {
  const t = await setup();
  try {
    const digest = await t.put("manifest");
    await t.images.create(ns, { name: "a", target: manifestTarget(digest) });
    await t.images.delete(ns, "a");
    assert.equal(t.db.dirty, true);
    const heard: boolean[] = [];
    t.db.onMutation((dirty) => heard.push(dirty));
    const res = await t.gc.collect();
    assert.equal(res.removedContent, 1);
    assert.equal(t.db.dirty, false);
    assert.deepEqual(heard, []);
  } finally {
    await t.dispose();
  }
});

/** A snapshotter seen only through its API (as a proxy plugin is), over a native one. */
function remoteView(sn: NativeSnapshotter, options: { down?: boolean } = {}): Snapshotter {
  return {
    stat: (n, k) => sn.stat(n, k),
    update: (n, i, o) => sn.update(n, i, o),
    usage: (n, k) => sn.usage(n, k),
    mounts: (n, k) => sn.mounts(n, k),
    prepare: (n, k, o) => sn.prepare(n, k, o),
    view: (n, k, o) => sn.view(n, k, o),
    commit: (n, name, o) => sn.commit(n, name, o),
    remove: (n, k) => sn.remove(n, k),
    walk: (n, fn, o) =>
      options.down ? Promise.reject(unavailable("Proxy snapshotter is down")) : sn.walk(n, fn, o),
    cleanup: () => sn.cleanup(),
    close: () => Promise.resolve(),
  };
}

Deno.test("GarbageCollector removes a remote snapshotter's unreachable snapshots through its API, leaves first", async () => {
  const t = await setup();
  const remote = new NativeSnapshotter(`${t.dir}/remote`, t.db);
  try {
    await remote.prepare(ns, "tmp-1");
    await remote.commit(ns, "base", { key: "tmp-1" });
    await remote.prepare(ns, "tmp-2", { parent: "base" });
    await remote.commit(ns, "top", { key: "tmp-2" });
    await remote.prepare(ns, "kept", { labels: { "containerd.io/gc.root": "x" } });
    const down = new GarbageCollector({
      db: t.db,
      content: t.content,
      images: t.images,
      leases: t.leases,
      snapshotters: new Map(),
      remoteSnapshotters: new Map([["remote", remoteView(remote, { down: true })]]),
      namespaces: () => [ns],
    });
    assert.equal((await down.collect()).removedSnapshots, 0);
    const up = new GarbageCollector({
      db: t.db,
      content: t.content,
      images: t.images,
      leases: t.leases,
      snapshotters: new Map(),
      remoteSnapshotters: new Map([["remote", remoteView(remote)]]),
      namespaces: () => [ns],
    });
    assert.equal((await up.collect()).removedSnapshots, 2);
    const left: string[] = [];
    await remote.walk(ns, (i) => void left.push(i.name));
    assert.deepEqual(left, ["kept"]);
  } finally {
    await remote.close();
    await t.dispose();
  }
});
