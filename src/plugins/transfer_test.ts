import assert from "node:assert/strict";
import { EventBus } from "../core/events/mod.ts";
import { MetadataDB } from "../core/metadata/db.ts";
import { silentLogger } from "../daemon/log.ts";
import { contentStorePlugin } from "./content.ts";
import { walkingDifferPlugin } from "./diff.ts";
import { imageStorePlugin } from "./images.ts";
import { leaseManagerPlugin } from "./leases.ts";
import { boltMetadataPlugin } from "./metadata.ts";
import { PluginRegistry } from "./registry.ts";
import { nativeSnapshotterPlugin } from "./snapshots.ts";
import { transferPlugin } from "./transfer.ts";

async function transferStatus(disabled: string[]): Promise<string | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "berth-transfer-plugin-" });
  const db = new MetadataDB(":memory:");
  try {
    const reg = new PluginRegistry();
    for (const p of [boltMetadataPlugin, contentStorePlugin, leaseManagerPlugin, imageStorePlugin]) {
      reg.register(p);
    }
    reg.register(nativeSnapshotterPlugin).register(walkingDifferPlugin).register(transferPlugin);
    await reg.init({
      root: `${dir}/root`,
      state: `${dir}/state`,
      address: `${dir}/s.sock`,
      db,
      events: new EventBus(),
      log: silentLogger,
      pluginConfig: () => ({}),
      disabled,
    });
    return reg.records.find((r) => r.type === "io.containerd.transfer.v1")?.status;
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("The transfer plugin applies layers through the differ plugin: disabling the differ disables it", async () => {
  assert.equal(await transferStatus([]), "ok");
  assert.notEqual(await transferStatus(["io.containerd.differ.v1.walking"]), "ok");
});
