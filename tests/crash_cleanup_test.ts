/**
 * What a daemon killed mid-work leaves behind is cleaned when it starts again (issue 14): an unpack's
 * `extract-…` snapshot and lease, the walking differ's temporary mounts.
 */
import assert from "node:assert/strict";
import { berthCommand, ctr, startDaemon, type TestDaemon } from "./helpers/daemon.ts";
import { startRegistry } from "./helpers/registry.ts";
import { buildBigImage, pushBigImage } from "../bench/big_image.ts";

async function ctrOk(d: TestDaemon, args: string[]): Promise<string> {
  const r = await ctr(d.address, args);
  assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Polls `check` until it holds, for at most `ms`. */
async function eventually(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function mountsUnder(dir: string): string[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((p) => p.startsWith(dir));
}

function snapshotFolders(root: string): string[] {
  const out: string[] = [];
  for (const sn of ["overlayfs", "native"]) {
    try {
      for (const e of Deno.readDirSync(`${root}/io.containerd.snapshotter.v1.${sn}/snapshots`)) {
        out.push(`${sn}/${e.name}`);
      }
    } catch { /* not used */ }
  }
  return out;
}

Deno.test("A daemon killed during an unpack leaves no extract snapshot, lease, mount or folder once restarted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-crash-" });
  await using registry = await startRegistry();
  let d: TestDaemon | undefined;
  let puller: Deno.ChildProcess | undefined;
  try {
    const image = await buildBigImage(`${dir}/layout`, { sizeMiB: 192 });
    const ref = `${registry.host}/big:1`;
    await pushBigImage(image, ref);
    Deno.mkdirSync(`${dir}/daemon`);
    d = await startDaemon({ dir: `${dir}/daemon` });
    const daemonDir = d.dir;
    puller = berthCommand(["--address", d.address, "images", "pull", "--plain-http", ref]).spawn();
    const running = d;
    await eventually("an extract snapshot appears", async () => {
      return (await ctrOk(running, ["snapshots", "ls"])).includes("extract-");
    }, 60_000);
    await d.stop("SIGKILL");
    puller.kill("SIGKILL");
    await puller.output();
    puller = undefined;
    const state = `${daemonDir}/state`;
    // A temp mount of the walking differ that an apply through a mount would leave (overlay's upper layers).
    const planted = `${state}/io.containerd.differ.v1.walking/berth-mount-planted`;
    Deno.mkdirSync(planted, { recursive: true });
    Deno.mkdirSync(`${dir}/src`);
    const bind = await new Deno.Command("mount", { args: ["--bind", `${dir}/src`, planted] }).output();
    assert.ok(bind.success, new TextDecoder().decode(bind.stderr));

    d = await startDaemon({ dir: daemonDir });
    const restarted = d;
    await eventually("the extract snapshot is collected", async () => {
      return !(await ctrOk(restarted, ["snapshots", "ls"])).includes("extract-");
    });
    assert.equal((await ctrOk(d, ["leases", "ls", "-q"])).trim(), "");
    assert.deepEqual(mountsUnder(daemonDir), []);
    assert.equal(Deno.statSync(planted.replace(/\/[^/]*$/, "")).isDirectory, true);
    assert.equal(await Deno.lstat(planted).then(() => true, () => false), false, "temp mount point removed");
    await eventually(
      "no snapshot folder is left",
      () => Promise.resolve(snapshotFolders(d!.root).length === 0),
    );
  } finally {
    try {
      puller?.kill("SIGKILL");
      await puller?.output();
    } catch { /* gone */ }
    await d?.stop("SIGKILL");
    for (const m of mountsUnder(dir).reverse()) {
      await new Deno.Command("umount", { args: ["-l", m] }).output();
    }
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Snapshot folders of a removal or prepare a crash interrupted are deleted when the daemon starts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-crash-" });
  try {
    let d = await startDaemon({ dir });
    const snapshots = `${d.root}/io.containerd.snapshotter.v1.native/snapshots`;
    await ctrOk(d, ["snapshots", "--snapshotter", "native", "prepare", "kept"]);
    const kept = snapshotFolders(d.root).filter((f) => f.startsWith("native/"));
    assert.equal(kept.length, 1);
    await d.stop("SIGKILL");
    // As a crash leaves them: a renamed removal with its tree, a prepare's temp folder, a folder without a record.
    for (const name of ["rm-123/fs/usr/bin", "new-4242/fs", "999/fs"]) {
      Deno.mkdirSync(`${snapshots}/${name}`, { recursive: true });
      Deno.writeTextFileSync(`${snapshots}/${name}/file`, "leftover");
    }
    d = await startDaemon({ dir });
    try {
      await eventually(
        "the leftovers are deleted",
        () => Promise.resolve(snapshotFolders(d.root).length === 1),
      );
      assert.deepEqual(snapshotFolders(d.root), kept);
      assert.match(await ctrOk(d, ["snapshots", "--snapshotter", "native", "ls"]), /^kept\s/m);
      // A new snapshot after the sweep works as ever.
      await ctrOk(d, ["snapshots", "--snapshotter", "native", "prepare", "after"]);
      assert.equal(snapshotFolders(d.root).length, 2);
    } finally {
      await d.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
