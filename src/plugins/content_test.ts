import assert from "node:assert/strict";
import type { ContentStore } from "../core/content/mod.ts";
import { digestOf } from "../oci/digest_of.ts";
import { EventBus } from "../core/events/mod.ts";
import { MetadataDB } from "../core/metadata/db.ts";
import { silentLogger } from "../daemon/log.ts";
import { contentPluginType } from "./ids.ts";
import { contentStorePlugin } from "./content.ts";
import { boltMetadataPlugin } from "./metadata.ts";
import { PluginRegistry } from "./registry.ts";

/** The content store as the daemon would build it from these `[plugins]` tables. */
async function withContent(
  plugins: Record<string, Record<string, unknown>>,
  fn: (store: ContentStore) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-content-plugin-" });
  const db = new MetadataDB(":memory:");
  try {
    const reg = new PluginRegistry().register(boltMetadataPlugin).register(contentStorePlugin);
    await reg.init({
      root: `${dir}/root`,
      state: `${dir}/state`,
      address: `${dir}/s.sock`,
      db,
      events: new EventBus(),
      log: silentLogger,
      pluginConfig: (type, id) => plugins[`${type}.${id}`] ?? {},
      required: ["io.containerd.content.v1.content"],
    });
    await fn(reg.get<ContentStore>(contentPluginType));
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Whether a namespace that lacks a blob another one holds gets it without writing it again. */
async function sharesAcrossNamespaces(store: ContentStore): Promise<boolean> {
  const data = new TextEncoder().encode("shared?");
  const digest = digestOf(data);
  const w = await store.writer("a", "one", { expected: digest, total: data.length });
  await w.write(data);
  await w.commit(data.length, digest);
  const other = await store.writer("b", "two", { expected: digest, total: data.length });
  try {
    return other.status().offset === data.length;
  } finally {
    await other.close();
  }
}

Deno.test("The content store takes containerd's bolt content_sharing_policy", async () => {
  await withContent({}, async (store) => assert.equal(await sharesAcrossNamespaces(store), true));
  await withContent(
    { "io.containerd.metadata.v1.bolt": { content_sharing_policy: "isolated" } },
    async (store) => assert.equal(await sharesAcrossNamespaces(store), false),
  );
  // Berth's own key in the content store's section wins.
  await withContent({
    "io.containerd.metadata.v1.bolt": { content_sharing_policy: "isolated" },
    "io.containerd.content.v1.content": { sharing_policy: "shared" },
  }, async (store) => assert.equal(await sharesAcrossNamespaces(store), true));
});
