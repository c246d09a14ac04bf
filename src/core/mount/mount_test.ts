import assert from "node:assert/strict";
import {
  MNT_DETACH,
  MS_BIND,
  MS_RDONLY,
  MS_REC,
  MS_REMOUNT,
  RecordingMountSyscalls,
} from "../../../ffi/mount.ts";
import { SyscallError } from "../../../ffi/libc.ts";
import { mountAll, parseMountOptions, unmountAll, withTempMount } from "./mod.ts";

async function tempDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "berth-mount-test-" });
  try {
    await fn(dir);
  } finally {
    try {
      unmountAll(`${dir}/mnt`, { flags: MNT_DETACH });
    } catch { /* not mounted */ }
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("parseMountOptions() separates flags, propagation and kernel data", () => {
  const p = parseMountOptions(["rbind", "ro", "rprivate", "lowerdir=/a:/b", "index=off"]);
  assert.equal(p.flags, MS_BIND | MS_REC | MS_RDONLY);
  assert.notEqual(p.propagation, 0);
  assert.equal(p.data, "lowerdir=/a:/b,index=off");
});

Deno.test("mountAll() makes a read-only bind with a second remount call", () => {
  const sys = new RecordingMountSyscalls();
  mountAll([{ type: "bind", source: "/src", options: ["ro", "rbind"] }], "/target", { syscalls: sys });
  assert.equal(sys.calls.length, 2);
  const [first, second] = sys.calls;
  assert.deepEqual(first, {
    op: "mount",
    source: "/src",
    target: "/target",
    fstype: "",
    flags: MS_BIND | MS_REC,
    data: "",
  });
  assert.equal(second?.op, "mount");
  assert.ok(second?.op === "mount" && (second.flags & (MS_REMOUNT | MS_RDONLY)) === (MS_REMOUNT | MS_RDONLY));
});

Deno.test("mountAll() undoes earlier mounts when a later one fails", () => {
  const ok = { type: "bind", source: "/a", options: ["rbind"] };
  const fake = new RecordingMountSyscalls();
  fake.failNext("mount", 22, "/t/sub");
  assert.throws(
    () =>
      mountAll([ok, { type: "overlay", source: "overlay", target: "sub", options: ["lowerdir=/x"] }], "/t", {
        syscalls: fake,
      }),
    (err: unknown) =>
      err instanceof SyscallError && err.message === "Cannot mount overlay on /t/sub: EINVAL (22)",
  );
  assert.deepEqual(fake.calls.at(-1), { op: "unmount", target: "/t", flags: MNT_DETACH });
});

Deno.test("mountAll() refuses a mount target that escapes the root", () => {
  const fake = new RecordingMountSyscalls();
  assert.throws(
    () => mountAll([{ type: "bind", source: "/a", target: "../x", options: [] }], "/t", { syscalls: fake }),
    /escapes/,
  );
  assert.equal(fake.calls.length, 0);
});

Deno.test("mountAll() bind-mounts read-only for real and unmountAll() removes it", async () => {
  await tempDir(async (dir) => {
    await Deno.mkdir(`${dir}/src`);
    await Deno.mkdir(`${dir}/mnt`);
    await Deno.writeTextFile(`${dir}/src/f`, "hello");
    mountAll([{ type: "bind", source: `${dir}/src`, options: ["ro", "rbind"] }], `${dir}/mnt`);
    try {
      assert.equal(await Deno.readTextFile(`${dir}/mnt/f`), "hello");
      await assert.rejects(Deno.writeTextFile(`${dir}/mnt/g`, "x"), /Read-only|EROFS|os error 30/);
    } finally {
      unmountAll(`${dir}/mnt`);
    }
    assert.deepEqual([...Deno.readDirSync(`${dir}/mnt`)], []);
  });
});

Deno.test("mountAll() mounts overlay with lowerdir, upperdir and workdir", async () => {
  await tempDir(async (dir) => {
    for (const d of ["l1", "l2", "up", "work", "mnt"]) await Deno.mkdir(`${dir}/${d}`);
    await Deno.writeTextFile(`${dir}/l1/a`, "l1");
    await Deno.writeTextFile(`${dir}/l2/a`, "l2");
    await Deno.writeTextFile(`${dir}/l2/b`, "b");
    mountAll([{
      type: "overlay",
      source: "overlay",
      options: [`lowerdir=${dir}/l1:${dir}/l2`, `upperdir=${dir}/up`, `workdir=${dir}/work`],
    }], `${dir}/mnt`);
    try {
      assert.equal(await Deno.readTextFile(`${dir}/mnt/a`), "l1");
      assert.equal(await Deno.readTextFile(`${dir}/mnt/b`), "b");
      await Deno.writeTextFile(`${dir}/mnt/c`, "c");
    } finally {
      unmountAll(`${dir}/mnt`);
    }
    assert.equal(await Deno.readTextFile(`${dir}/up/c`), "c");
  });
});

Deno.test("withTempMount() unmounts and removes its folder even when fn throws", async () => {
  await tempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/f`, "x");
    let seen = "";
    await assert.rejects(
      withTempMount([{ type: "bind", source: dir, options: ["rbind", "ro"] }], async (root) => {
        seen = root;
        assert.equal(await Deno.readTextFile(`${root}/f`), "x");
        throw new Error("boom");
      }),
      /boom/,
    );
    assert.ok(seen !== "");
    await assert.rejects(Deno.stat(seen), Deno.errors.NotFound);
  });
});
