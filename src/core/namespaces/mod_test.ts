import assert from "node:assert/strict";
import { MetadataDB } from "../metadata/db.ts";
import { NamespaceStore } from "./mod.ts";

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
      assert.throws(() => store.create({ name: bad, labels: {} }), /Invalid namespace/, bad);
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
