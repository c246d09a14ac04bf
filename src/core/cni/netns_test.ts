import assert from "node:assert/strict";
import { SyscallError } from "../../../ffi/libc.ts";
import {
  EINVAL,
  MNT_DETACH,
  MS_BIND,
  MS_PRIVATE,
  MS_REC,
  MS_SHARED,
  RecordingMountSyscalls,
  UMOUNT_NOFOLLOW,
} from "../../../ffi/mount.ts";
import { isMountPoint, mountsBelow, parseMountPoints } from "./mountinfo.ts";
import { createNetns, prepareNetnsDir, releaseNetnsDir, removeNetns, runInNetns } from "./netns.ts";

const isRoot = Deno.uid() === 0;

/** A temp folder for namespaces; afterwards every namespace in it and its own mount are gone. */
async function withNetnsDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "berth-netns-" });
  try {
    await fn(dir);
  } finally {
    for (const p of mountsBelow(dir)) await removeNetns(p).catch(() => {});
    releaseNetnsDir(dir);
    await Deno.remove(dir, { recursive: true });
  }
}

async function text(out: Promise<Deno.CommandOutput>): Promise<string> {
  const o = await out;
  assert.ok(o.success, new TextDecoder().decode(o.stderr));
  return new TextDecoder().decode(o.stdout).trim();
}

Deno.test("prepareNetnsDir() bind-mounts the folder on itself, then makes it private and then shared", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-netns-fake-" });
  try {
    const sys = new RecordingMountSyscalls();
    prepareNetnsDir(`${dir}/netns`, sys);
    const real = Deno.realPathSync(`${dir}/netns`);
    assert.deepEqual(sys.calls, [
      { op: "mount", source: real, target: real, fstype: "", flags: MS_BIND | MS_REC, data: "" },
      { op: "mount", source: "", target: real, fstype: "", flags: MS_PRIVATE, data: "" },
      { op: "mount", source: "", target: real, fstype: "", flags: MS_SHARED, data: "" },
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("removeNetns() unmounts without following symlinks, tolerates a non-mount, and ignores a missing path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-netns-fake-" });
  try {
    const sys = new RecordingMountSyscalls();
    await removeNetns(`${dir}/absent`, { syscalls: sys });
    assert.deepEqual(sys.calls, []);
    await Deno.writeTextFile(`${dir}/cni-x`, "");
    sys.failNext("unmount", EINVAL);
    await removeNetns(`${dir}/cni-x`, { syscalls: sys });
    assert.deepEqual(sys.calls, [{
      op: "unmount",
      target: `${dir}/cni-x`,
      flags: MNT_DETACH | UMOUNT_NOFOLLOW,
    }]);
    await assert.rejects(Deno.lstat(`${dir}/cni-x`), Deno.errors.NotFound);
    await Deno.writeTextFile(`${dir}/cni-y`, "");
    sys.failNext("unmount", 1);
    await assert.rejects(removeNetns(`${dir}/cni-y`, { syscalls: sys }), SyscallError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseMountPoints() unescapes mountinfo's octal escapes", () => {
  const line = String.raw`53 27 0:4 net:[4026532312] /tmp/a\040b/ns1 rw - nsfs nsfs rw`;
  assert.deepEqual(parseMountPoints(`${line}\n`), ["/tmp/a b/ns1"]);
});

Deno.test({
  name:
    "createNetns() makes a new, empty network namespace held by a bind mount; removeNetns() frees it twice over",
  ignore: !isRoot,
  async fn() {
    await withNetnsDir(async (dir) => {
      const a = await createNetns(dir);
      const b = await createNetns(dir);
      assert.notEqual(a, b);
      assert.match(
        a,
        new RegExp(`^${dir}/cni-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`),
      );
      assert.ok(isMountPoint(a) && isMountPoint(b));
      const ours = await Deno.readLink("/proc/self/ns/net");
      const inA = await text(runInNetns(a, ["readlink", "/proc/self/ns/net"]));
      const inB = await text(runInNetns(b, ["readlink", "/proc/self/ns/net"]));
      assert.match(inA, /^net:\[\d+\]$/);
      assert.notEqual(inA, ours);
      assert.notEqual(inA, inB);
      assert.deepEqual(
        (await text(runInNetns(a, ["ip", "-o", "link"]))).split("\n").map((l) => l.split(":")[1]!.trim()),
        [
          "lo",
        ],
      );
      await removeNetns(a);
      assert.ok(!isMountPoint(a));
      await assert.rejects(Deno.lstat(a), Deno.errors.NotFound);
      await removeNetns(a);
      await removeNetns(b);
      assert.deepEqual(mountsBelow(dir), []);
    });
  },
});

Deno.test({
  name:
    "createNetns() leaves its folder a mount point of its own peer group, which releaseNetnsDir() keeps while in use",
  ignore: !isRoot,
  async fn() {
    await withNetnsDir(async (dir) => {
      const ns = await createNetns(dir);
      const line = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").find((l) =>
        l.split(" ")[4] === dir
      )!;
      assert.match(line, / shared:\d+ /, line);
      const parent = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").find((l) =>
        l.split(" ")[4] === "/"
      );
      const group = / shared:(\d+) /.exec(line)![1];
      assert.ok(!parent?.includes(` shared:${group} `), "not in the peer group of /");
      assert.throws(
        () => releaseNetnsDir(dir),
        /Cannot release netns folder .*: 1 namespaces are still mounted in it/,
      );
      await removeNetns(ns);
      releaseNetnsDir(dir);
      assert.ok(!isMountPoint(dir));
    });
  },
});
