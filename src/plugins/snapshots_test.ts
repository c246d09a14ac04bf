import assert from "node:assert/strict";
import { MetadataDB } from "../core/metadata/db.ts";
import { overlaySupported } from "../core/snapshots/mod.ts";
import { RecordingMountSyscalls } from "../../ffi/mount.ts";
import type { InitContext } from "./registry.ts";
import { nativeSnapshotterPlugin, overlaySnapshotterPlugin } from "./snapshots.ts";

async function withContext(fn: (ic: InitContext) => Promise<void>, config: Record<string, unknown> = {}) {
  const tmp = await Deno.makeTempDir({ prefix: "berth-snap-plugin-" });
  const db = new MetadataDB(`${tmp}/meta.db`);
  try {
    // Only what the snapshotter plugins read; the rest would be a daemon's.
    const ic = {
      root: `${tmp}/root`,
      state: `${tmp}/state`,
      config,
      db,
      exports: {},
    } as unknown as InitContext;
    await fn(ic);
  } finally {
    db.close();
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test("overlayfs plugin initialises on a file system that supports overlay and exports its root", async () => {
  await withContext(async (ic) => {
    const sn = await overlaySnapshotterPlugin.init(ic);
    assert.equal(ic.exports["root"], ic.root);
    const mounts = await sn.prepare("default", "k");
    assert.equal(mounts[0]?.type, "bind");
    // The support check leaves nothing behind in the root.
    assert.deepEqual([...Deno.readDirSync(ic.root)].map((e) => e.name), ["snapshots"]);
  });
});

Deno.test("overlayfs plugin rejects mount_options that are not a list of strings", async () => {
  await withContext(async (ic) => {
    await assert.rejects(
      Promise.resolve(overlaySnapshotterPlugin.init(ic)),
      /Invalid overlayfs mount_options/,
    );
  }, { mount_options: "index=off" });
});

Deno.test("overlaySupported() is false when the overlay mount fails", async () => {
  await withContext(async (ic) => {
    const sys = new RecordingMountSyscalls();
    sys.failNext("mount", 19);
    assert.equal(await overlaySupported(ic.root, { syscalls: sys }), false);
    assert.equal(await overlaySupported(ic.root), true);
  });
});

Deno.test("native plugin initialises anywhere", async () => {
  await withContext(async (ic) => {
    const sn = await nativeSnapshotterPlugin.init(ic);
    assert.equal((await sn.view("default", "v"))[0]?.options.includes("ro"), true);
  });
});
