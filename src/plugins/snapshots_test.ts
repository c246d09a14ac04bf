import assert from "node:assert/strict";
import { MetadataDB } from "../core/metadata/db.ts";
import { btrfsMountOf, overlaySupported } from "../core/snapshots/mod.ts";
import { RecordingMountSyscalls } from "../../ffi/mount.ts";
import type { InitContext } from "./registry.ts";
import { btrfsSnapshotterPlugin, nativeSnapshotterPlugin, overlaySnapshotterPlugin } from "./snapshots.ts";
import { SkipPlugin } from "./registry.ts";

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
    // The support check leaves only its record of the success behind in the root.
    assert.deepEqual([...Deno.readDirSync(ic.root)].map((e) => e.name).sort(), [
      "overlay-supported",
      "snapshots",
    ]);
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

Deno.test("overlaySupported() remembers a success for this kernel and file system, not a failure", async () => {
  await withContext(async (ic) => {
    const failing = () => {
      const sys = new RecordingMountSyscalls();
      sys.failNext("mount", 19);
      return sys;
    };
    assert.equal(await overlaySupported(ic.root, { syscalls: failing() }), false);
    assert.equal(await overlaySupported(ic.root), true);
    const stamp = `${ic.root}/overlay-supported`;
    assert.equal(Deno.readTextFileSync(stamp), `${Deno.osRelease()} ${Deno.statSync(ic.root).dev}\n`);
    // Remembered: no test mount is tried, so a failing one does not matter.
    const sys = failing();
    assert.equal(await overlaySupported(ic.root, { syscalls: sys }), true);
    assert.deepEqual(sys.calls, []);
    // Another kernel (or file system) tests again.
    Deno.writeTextFileSync(stamp, `0.0.0-other ${Deno.statSync(ic.root).dev}\n`);
    assert.equal(await overlaySupported(ic.root, { syscalls: failing() }), false);
    assert.deepEqual(
      [...Deno.readDirSync(ic.root)].map((e) => e.name).filter((n) => n.startsWith("overlay-check")),
      [],
    );
  });
});

Deno.test("native plugin initialises anywhere", async () => {
  await withContext(async (ic) => {
    const sn = await nativeSnapshotterPlugin.init(ic);
    assert.equal((await sn.view("default", "v"))[0]?.options.includes("ro"), true);
  });
});

Deno.test("native and overlayfs plugins keep their snapshots under root_path when it is set", async () => {
  for (const plugin of [nativeSnapshotterPlugin, overlaySnapshotterPlugin]) {
    const elsewhere = await Deno.makeTempDir({ prefix: "berth-root-path-" });
    try {
      await withContext(async (ic) => {
        const sn = await plugin.init(ic);
        assert.equal(ic.exports["root"], `${elsewhere}/snap`);
        await sn.prepare("default", "k");
        assert.equal(Deno.statSync(`${elsewhere}/snap/snapshots`).isDirectory, true);
        assert.throws(() => Deno.statSync(ic.root), Deno.errors.NotFound);
      }, { root_path: `${elsewhere}/snap` });
    } finally {
      await Deno.remove(elsewhere, { recursive: true });
    }
  }
});

Deno.test("btrfs plugin is skipped, in containerd's words, when its root is not on btrfs", async () => {
  await withContext(async (ic) => {
    await Deno.mkdir(ic.root, { recursive: true });
    if ((await btrfsMountOf(ic.root)).fsType === "btrfs") return;
    await assert.rejects(
      Promise.resolve(btrfsSnapshotterPlugin.init(ic)),
      (err: unknown) =>
        err instanceof SkipPlugin &&
        /^path .* must be a btrfs filesystem to be used with the btrfs snapshotter: skip plugin$/.test(
          err.message,
        ),
    );
  });
});

Deno.test("snapshotter plugins reject a root_path that is not a string", async () => {
  await withContext(async (ic) => {
    await assert.rejects(Promise.resolve(btrfsSnapshotterPlugin.init(ic)), /Invalid btrfs root_path/);
  }, { root_path: 7 });
});

Deno.test("overlayfs upperdir_label names each snapshot's upper folder on stat, update and walk, after filters", async () => {
  await withContext(async (ic) => {
    const sn = await overlaySnapshotterPlugin.init(ic);
    await sn.prepare("default", "base", { labels: { keep: "1" } });
    await sn.commit("default", "c1", { key: "base" });
    const mounts = await sn.prepare("default", "top", { parent: "c1" });
    const upper = mounts[0]!.options.find((o) => o.startsWith("upperdir="))!.slice("upperdir=".length);
    const label = "containerd.io/snapshot/overlay.upperdir";
    assert.equal((await sn.stat("default", "top")).labels[label], upper);
    assert.ok(Deno.statSync(upper).isDirectory);
    const updated = await sn.update("default", { ...await sn.stat("default", "top"), labels: { x: "y" } }, {
      fieldpaths: ["labels.x"],
    });
    assert.equal(updated.labels[label], upper);
    assert.equal(updated.labels.x, "y");
    const seen: Record<string, string | undefined> = {};
    await sn.walk("default", (info) => {
      seen[info.name] = info.labels[label];
    });
    assert.deepEqual(Object.keys(seen).sort(), ["c1", "top"]);
    assert.ok(seen.c1?.startsWith(`${ic.root}/snapshots/`));
    // Filters see the stored labels only, as containerd's WalkInfo.
    const filtered: string[] = [];
    await sn.walk("default", (info) => void filtered.push(info.name), { filters: [`labels."${label}"`] });
    assert.deepEqual(filtered, []);
  }, { upperdir_label: true });
});

Deno.test("overlayfs without upperdir_label adds no label, and rejects a value that is not a boolean", async () => {
  await withContext(async (ic) => {
    const sn = await overlaySnapshotterPlugin.init(ic);
    await sn.prepare("default", "k");
    assert.deepEqual((await sn.stat("default", "k")).labels, {});
  });
  await withContext(async (ic) => {
    await assert.rejects(
      Promise.resolve(overlaySnapshotterPlugin.init(ic)),
      /Invalid overlayfs upperdir_label/,
    );
  }, { upperdir_label: "yes" });
});
