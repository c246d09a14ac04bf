import assert from "node:assert/strict";
import { ContainerStore } from "../containers/store.ts";
import { ContentStore } from "../content/mod.ts";
import { digestOf } from "../../oci/digest_of.ts";
import { ImageStore } from "../images/mod.ts";
import { LeaseManager } from "../leases/mod.ts";
import { NativeSnapshotter } from "../snapshots/mod.ts";
import { MetadataDB } from "./db.ts";

const ns = "default";

async function withStores(
  fn: (s: {
    db: MetadataDB;
    content: ContentStore;
    images: ImageStore;
    leases: LeaseManager;
    containers: ContainerStore;
    native: NativeSnapshotter;
    heard: boolean[];
    put: (text: string) => Promise<string>;
  }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-metadata-" });
  const db = new MetadataDB(`${dir}/meta.db`);
  const native = new NativeSnapshotter(`${dir}/native`, db);
  try {
    const content = new ContentStore(`${dir}/content`, db);
    const images = new ImageStore(db);
    const leases = new LeaseManager(db);
    const containers = new ContainerStore(db);
    const heard: boolean[] = [];
    db.onMutation((dirty) => heard.push(dirty));
    const put = async (text: string) => {
      const bytes = new TextEncoder().encode(text);
      const digest = digestOf(bytes);
      const w = await content.writer(ns, `ref-${digest}`, { total: bytes.length, expected: digest });
      await w.write(bytes);
      await w.commit(bytes.length, digest);
      return digest;
    };
    await fn({
      db,
      content,
      images,
      leases,
      containers,
      native,
      heard,
      put,
    });
  } finally {
    await native.close();
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const target = (digest: string) => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest,
  size: 1,
  annotations: {},
});

Deno.test("MetadataDB reports every committed transaction, dirty from a deletion until a collection", async () => {
  await withStores(async ({ db, images, put, heard }) => {
    const digest = await put("manifest");
    await images.create(ns, { name: "a", target: target(digest) });
    assert.deepEqual(heard, [false, false], "the blob's commit and the image's creation");
    await images.delete(ns, "a");
    assert.equal(heard.at(-1), true);
    // As containerd's, the flag stays up for later writes until a collection has run.
    await images.create(ns, { name: "b", target: target(digest) });
    assert.equal(heard.at(-1), true);
    const before = heard.length;
    db.collect(() => {});
    assert.equal(heard.length, before, "the collector's own transaction is not reported");
    assert.equal(db.dirty, false);
    await images.create(ns, { name: "c", target: target(digest) });
    assert.equal(heard.at(-1), false);
  });
});

Deno.test("MetadataDB counts as deletions what containerd counts: image, container, lease, lease resource, content and snapshot removals", async () => {
  await withStores(async (s) => {
    const digest = await s.put("blob");
    const clean = () => s.db.collect(() => {});
    const cases: [string, () => Promise<unknown> | unknown, boolean][] = [
      ["create an image", () => s.images.create(ns, { name: "i", target: target(digest) }), false],
      [
        "label an image",
        () => s.images.update(ns, { name: "i", target: target(digest), labels: { a: "b" } }),
        false,
      ],
      ["delete an image", () => s.images.delete(ns, "i"), true],
      ["create a lease", () => s.leases.create(ns, { id: "l" }), false],
      ["add a lease resource", () => s.leases.addResource(ns, "l", { type: "content", id: digest }), false],
      [
        "delete a lease resource",
        () => s.leases.deleteResource(ns, "l", { type: "content", id: digest }),
        true,
      ],
      ["delete a lease", () => s.leases.delete(ns, "l"), true],
      ["label content", () => s.content.update(ns, { digest, labels: { a: "b" } }), false],
      ["delete content", () => s.content.delete(ns, digest), true],
      ["prepare a snapshot", () => s.native.prepare(ns, "k"), false],
      ["remove a snapshot", () => s.native.remove(ns, "k"), true],
      [
        "create a container",
        () =>
          s.containers.create(ns, {
            id: "c",
            labels: {},
            image: "",
            runtime: { name: "io.containerd.runc.v2" },
            spec: {
              typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec",
              value: new Uint8Array(),
            },
            snapshotter: "",
            snapshotKey: "",
            extensions: {},
            sandbox: "",
          }),
        false,
      ],
      ["delete a container", () => s.containers.delete(ns, "c"), true],
    ];
    for (const [what, op, dirty] of cases) {
      clean();
      await op();
      assert.equal(s.db.dirty, dirty, what);
      assert.equal(s.heard.at(-1), dirty, what);
    }
  });
});

Deno.test("MetadataDB undoes only a failed nested transaction that its caller catches", async () => {
  await withStores(async ({ db, images, put, heard }) => {
    const digest = await put("manifest");
    const before = heard.length;
    db.tx(() => {
      images.listSync(ns);
      db.sql.prepare("CREATE TABLE kept (x INTEGER)").run();
      try {
        db.tx(() => {
          db.sql.prepare("INSERT INTO kept (x) VALUES (1)").run();
          throw new Error("undo me");
        });
      } catch { /* the outer transaction goes on */ }
      db.sql.prepare("INSERT INTO kept (x) VALUES (2)").run();
    });
    assert.deepEqual(db.sql.prepare("SELECT x FROM kept").all().map((r) => r.x), [2]);
    assert.equal(heard.length, before + 1, "one commit, one report");
    assert.throws(() =>
      db.tx(() => {
        db.sql.prepare("DELETE FROM kept").run();
        db.markDirty();
        throw new Error("roll back");
      }), /roll back/);
    assert.equal(heard.length, before + 1, "a rollback is not reported");
    assert.equal(db.dirty, false, "a rolled-back deletion does not count");
    assert.ok(digest);
  });
});
