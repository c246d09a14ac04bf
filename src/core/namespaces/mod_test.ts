import assert from "node:assert/strict";
import { join } from "node:path";
import { realtimeNanos } from "../../../ffi/clock.ts";
import { ContainerStore, specTypeUrl } from "../containers/mod.ts";
import { ContentStore } from "../content/mod.ts";
import { ImageStore } from "../images/mod.ts";
import { LeaseManager } from "../leases/mod.ts";
import { MetadataDB } from "../metadata/db.ts";
import { SnapshotStore } from "../snapshots/storage.ts";
import { MIGRATIONS, NamespaceStore } from "./mod.ts";

function fresh() {
  const db = new MetadataDB(":memory:");
  return { db, store: new NamespaceStore(db) };
}

Deno.test("NamespaceStore creates, labels, lists and deletes namespaces", () => {
  const { db, store } = fresh();
  try {
    store.create({ name: "a", labels: { x: "1" } });
    assert.throws(() => store.create({ name: "a", labels: {} }), /already exists/);
    store.update({ name: "a", labels: { y: "2" } }, ["labels.y"]);
    store.update({ name: "a", labels: {} }, ["labels.x"]);
    assert.deepEqual(store.get("a").labels, { y: "2" });
    assert.deepEqual(store.list().map((n) => n.name), ["a"]);
    store.delete("a");
    assert.throws(() => store.get("a"), /not found/);
    assert.throws(() => store.delete("a"), /not found/);
  } finally {
    db.close();
  }
});

Deno.test("NamespaceStore sees namespaces made implicitly by other objects and refuses to delete them while used", () => {
  const { db, store } = fresh();
  try {
    db.sql.exec("CREATE TABLE widgets (namespace TEXT, name TEXT)");
    db.sql.prepare("INSERT INTO widgets VALUES (?, ?)").run("implicit", "w1");
    assert.deepEqual(store.list().map((n) => n.name), ["implicit"]);
    assert.deepEqual(store.get("implicit"), { name: "implicit", labels: {} });
    assert.throws(() => store.delete("implicit"), /must be empty, but it still has widgets/);
  } finally {
    db.close();
  }
});

Deno.test("NamespaceStore validates names as containerd identifiers", () => {
  const { db, store } = fresh();
  try {
    for (const bad of ["", "has space", "-lead", "trail-", "a..b", "x".repeat(77)]) {
      assert.throws(() => store.create({ name: bad, labels: {} }), /invalid namespace/, bad);
    }
    store.create({ name: "k8s.io", labels: {} });
  } finally {
    db.close();
  }
});

Deno.test("NamespaceStore.update() creates a namespace that does not exist yet, as containerd's SetLabel", () => {
  const { db, store } = fresh();
  try {
    store.update({ name: "fresh", labels: { "containerd.io/defaults/snapshotter": "overlayfs" } }, [
      "labels.containerd.io/defaults/snapshotter",
    ]);
    assert.deepEqual(store.get("fresh").labels, { "containerd.io/defaults/snapshotter": "overlayfs" });
    assert.throws(() => store.create({ name: "fresh", labels: {} }), /already exists/);
    assert.throws(() => store.update({ name: "fresh", labels: {} }, ["name"]), /only labels change/);
  } finally {
    db.close();
  }
});

Deno.test("Every kind of object made in a fresh namespace makes it exist and keeps it from being deleted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-namespaces-" });
  const db = new MetadataDB(join(dir, "meta.db"));
  try {
    const namespaces = new NamespaceStore(db);
    const content = new ContentStore(join(dir, "content"), db);
    const images = new ImageStore(db);
    const containers = new ContainerStore(db);
    const leases = new LeaseManager(db);
    const snapshots = new SnapshotStore(db, "overlayfs");
    // Some stores answer at once, some with a promise: each step is awaited either way.
    const makers: Record<string, { make(ns: string): unknown; remove(ns: string): unknown }> = {
      content_ingests: {
        make: (ns) => content.writer(ns, "ref").then((w) => w.close()),
        remove: (ns) => content.abort(ns, "ref"),
      },
      images: {
        make: (ns) =>
          images.create(ns, {
            name: "img",
            target: {
              mediaType: "application/vnd.oci.image.index.v1+json",
              digest: `sha256:${"a".repeat(64)}`,
              size: 1,
              annotations: {},
            },
          }),
        remove: (ns) => images.delete(ns, "img"),
      },
      containers: {
        make: (ns) =>
          containers.create(ns, {
            id: "c",
            labels: {},
            image: "",
            runtime: { name: "io.containerd.runc.v2" },
            spec: { typeUrl: specTypeUrl, value: new TextEncoder().encode("{}") },
            snapshotter: "",
            snapshotKey: "",
            extensions: {},
            sandbox: "",
          }),
        remove: (ns) => containers.delete(ns, "c"),
      },
      leases: { make: (ns) => leases.create(ns, { id: "l" }), remove: (ns) => leases.delete(ns, "l") },
      snapshots: {
        make: (ns) => snapshots.createSnapshot(ns, "active", "s", {}),
        remove: (ns) => snapshots.remove(ns, "s"),
      },
    };
    for (const [table, maker] of Object.entries(makers)) {
      const ns = `fresh-${table.replace("_", "-")}`;
      await maker.make(ns);
      assert.deepEqual(namespaces.list().map((n) => n.name), [ns], table);
      assert.deepEqual(namespaces.get(ns), { name: ns, labels: {} }, table);
      assert.throws(
        () => namespaces.delete(ns),
        new RegExp(`must be empty, but it still has ${table}$`),
        table,
      );
      await maker.remove(ns);
      assert.deepEqual(namespaces.list(), [], table);
    }
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NamespaceStore turns the millisecond creation times of an older database into nanoseconds", () => {
  const db = new MetadataDB(":memory:");
  try {
    db.migrate("namespaces", MIGRATIONS.slice(0, 1));
    db.sql.prepare("INSERT INTO namespaces (name, labels, created_at) VALUES (?, ?, ?)").run(
      "old",
      "{}",
      1796606078549,
    );
    const store = new NamespaceStore(db);
    const t0 = realtimeNanos();
    store.create({ name: "new", labels: {} });
    const t1 = realtimeNanos();
    const created = db.prepareBigInts("SELECT name, created_ns FROM namespaces ORDER BY name").all()
      .map((r) => [r.name, r.created_ns] as [string, bigint]);
    assert.deepEqual(created[1], ["old", 1796606078549000000n]);
    assert.equal(created[0]![0], "new");
    assert.ok(t0 <= created[0]![1] && created[0]![1] <= t1);
    assert.deepEqual(store.get("old"), { name: "old", labels: {} });
  } finally {
    db.close();
  }
});
