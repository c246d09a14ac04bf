/**
 * The btrfs snapshotter on a btrfs the test makes (loop file, mkfs.btrfs, mount; all undone afterwards):
 * the shared snapshotter conformance suite, containerd's plugin status (skip off btrfs, ok on it), and
 * Debian's real `ctr` pulling and running an image with `--snapshotter btrfs`.
 */
import assert from "node:assert/strict";
import { btrfsMountOf, BtrfsSnapshotter, removeSubvolumes } from "../src/core/snapshots/mod.ts";
import { snapshotterSuite } from "../src/core/snapshots/testsuite.ts";
import { MetadataDB } from "../src/core/metadata/db.ts";
import { mountAll, unmountAll } from "../src/core/mount/mod.ts";
import { type LoopBtrfs, loopBtrfsAvailable, makeLoopBtrfs } from "./helpers/loop_btrfs.ts";
import { ctr, startDaemon, type TestDaemon } from "./helpers/daemon.ts";
import { startRegistry } from "./helpers/registry.ts";
import { buildFixtureImages, pushFixtures } from "./fixtures/images.ts";

const available = loopBtrfsAvailable();
const fs: LoopBtrfs | undefined = available ? await makeLoopBtrfs() : undefined;

snapshotterSuite("btrfs", async (root, db) => {
  await Deno.mkdir(root, { recursive: true });
  return new BtrfsSnapshotter(root, db, { device: (await btrfsMountOf(root)).device });
}, { dir: () => fs!.mountpoint, removeRoot: (root) => removeSubvolumes(root), ignore: !available });

/** A snapshotter on a fresh folder of the loop btrfs, removed (subvolumes and all) afterwards. */
async function withBtrfs(fn: (sn: BtrfsSnapshotter, root: string) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir({ dir: fs!.mountpoint, prefix: "unit-" });
  const db = new MetadataDB(`${tmp}/meta.db`);
  try {
    const sn = new BtrfsSnapshotter(`${tmp}/root`, db, { device: fs!.device });
    await fn(sn, `${tmp}/root`);
  } finally {
    db.close();
    await removeSubvolumes(tmp);
    await Deno.remove(tmp, { recursive: true });
  }
}

function btrfsCli(args: string[]): string {
  const out = new Deno.Command("btrfs", { args, stdout: "piped", stderr: "piped" }).outputSync();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

Deno.test({
  name: "BtrfsSnapshotter mounts subvolumes by id, as containerd, and commits to a read-only snapshot",
  ignore: !available,
}, async () => {
  await withBtrfs(async (sn, root) => {
    const [m] = await sn.prepare("ns", "a");
    assert.equal(m?.type, "btrfs");
    assert.equal(m?.source, fs!.device);
    assert.match(m!.options[0]!, /^subvolid=\d+$/);
    assert.equal(m!.options.length, 1);
    const dir = `${root}/../mnt-a`;
    await Deno.mkdir(dir);
    mountAll([m!], dir);
    try {
      await Deno.writeFile(`${dir}/big`, new Uint8Array(1 << 20).fill(1));
    } finally {
      unmountAll(dir);
    }
    await sn.commit("ns", "base", { key: "a" });
    const [id] = [...Deno.readDirSync(`${root}/snapshots`)].map((e) => e.name);
    assert.deepEqual([...Deno.readDirSync(`${root}/snapshots/${id}`)].map((e) => e.name), ["committed"]);
    assert.match(btrfsCli(["property", "get", `${root}/snapshots/${id}/committed`, "ro"]), /ro=true/);
    // The same subvolume id is in `btrfs subvolume list` (the CLI reads what the ioctls made).
    const [v] = await sn.view("ns", "v", { parent: "base" });
    assert.deepEqual(v!.options.slice(1), ["ro"]);
    const list = btrfsCli(["subvolume", "list", fs!.mountpoint]);
    assert.match(list, new RegExp(`ID ${v!.options[0]!.slice("subvolid=".length)} .*/fs\n`));
    // A child shares its parent's extents: its usage is what it adds, not the parent's megabyte.
    await sn.prepare("ns", "child", { parent: "base" });
    assert.ok((await sn.usage("ns", "child")).size < 1 << 20);
    await sn.remove("ns", "child");
    await sn.remove("ns", "v");
    await sn.remove("ns", "base");
    assert.deepEqual([...Deno.readDirSync(`${root}/snapshots`)], []);
    assert.doesNotMatch(btrfsCli(["subvolume", "list", fs!.mountpoint]), /snapshots/);
  });
});

Deno.test({
  name: "ctr plugins ls shows btrfs skip off btrfs and ok with root_path on btrfs; ctr runs an image on it",
  ignore: !available,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-btrfs-e2e-" });
  await using registry = await startRegistry();
  const pushed = await pushFixtures(registry, await buildFixtureImages(`${dir}/layout`), {
    names: ["single"],
  });
  const image = pushed.single.reference;
  const status = async (d: TestDaemon) => {
    const r = await ctr(d.address, ["plugins", "ls"]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split("\n").find((l) => /\bbtrfs\b/.test(l))?.trim().split(/\s+/).at(-1);
  };
  try {
    {
      await using plain = await startDaemon();
      assert.equal(await status(plain), "skip");
    }
    const root = `${fs!.mountpoint}/e2e-root`;
    await using d = await startDaemon({
      config: `version = 2
[plugins."io.containerd.gc.v1.scheduler"]
  startup_delay = "0s"
[plugins."io.containerd.snapshotter.v1.btrfs"]
  root_path = "${root}"
`,
    });
    try {
      assert.equal(await status(d), "ok");
      const run = async (args: string[]) => {
        const r = await ctr(d.address, args);
        assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}${r.stdout}`);
        return r.stdout;
      };
      await run(["images", "pull", "--plain-http", "--snapshotter", "btrfs", image]);
      assert.match(await run(["snapshots", "--snapshotter", "btrfs", "ls"]), /Committed/);
      const out = await run([
        "run",
        "--rm",
        "--snapshotter",
        "btrfs",
        image,
        "b1",
        "sh",
        "-c",
        "echo hi > /f && cat /f",
      ]);
      assert.equal(out.trim(), "hi");
      // Garbage collection removes the image's snapshots, read-only subvolumes and all.
      await run(["images", "rm", "--sync", image]);
      assert.equal((await run(["snapshots", "--snapshotter", "btrfs", "ls"])).trim().split("\n").length, 1);
      assert.deepEqual([...Deno.readDirSync(`${root}/snapshots`)], []);
    } finally {
      await ctr(d.address, ["tasks", "rm", "-f", "b1"]);
      await ctr(d.address, ["containers", "rm", "b1"]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Registered last, so that it runs after every case of this file, failed or not.
Deno.test({ name: "btrfs tests: the loop file system goes away", ignore: !available }, async () => {
  const { device, mountpoint } = fs!;
  await fs!.dispose();
  const mounts = await Deno.readTextFile("/proc/self/mountinfo");
  assert.ok(!mounts.includes(mountpoint), mountpoint);
  const loops = new TextDecoder().decode(
    (await new Deno.Command("losetup", { args: ["-a"] }).output()).stdout,
  );
  assert.ok(!loops.includes(`${device}:`), loops);
});
