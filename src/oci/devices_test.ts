import assert from "node:assert/strict";
import { devicesFromPath, devMajor, devMinor, withDevices } from "./devices.ts";
import { defaultUnixSpec } from "./spec.ts";

Deno.test("devMajor() and devMinor() split a dev_t as glibc does, large numbers included", () => {
  assert.deepEqual([devMajor(0x0103), devMinor(0x0103)], [1, 3]);
  // major 259, minor 300: minor's high bits live above the major's low twelve.
  const dev = (300 & 0xff) | ((259 & 0xfff) << 8) | ((300 & ~0xff) << 12);
  assert.deepEqual([devMajor(dev), devMinor(dev)], [259, 300]);
});

Deno.test("devicesFromPath() reads a node and renames it for the container", async () => {
  assert.deepEqual(await devicesFromPath("/dev/null", "/dev/xnull"), [
    { path: "/dev/xnull", type: "c", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
  ]);
});

Deno.test("devicesFromPath() walks /dev in name order without pts, shm, fd, mqueue or the console", async () => {
  const devs = await devicesFromPath("/dev");
  const paths = devs.map((d) => d.path);
  assert.ok(paths.includes("/dev/null"));
  assert.deepEqual([...paths].sort(), paths);
  for (const p of paths) {
    assert.ok(!/^\/dev\/(pts|shm|fd|mqueue)\//.test(p) && p !== "/dev/console", p);
  }
  assert.ok(devs.every((d) => d.type === "c" || d.type === "b"));
});

Deno.test("devicesFromPath() refuses a file that is not a device", async () => {
  const file = await Deno.makeTempFile();
  try {
    await assert.rejects(devicesFromPath(file), new RegExp(`Cannot use "${file}" as a device`));
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("withDevices() adds each device and a cgroup rule with the permissions", async () => {
  const s = defaultUnixSpec("k8s.io", "x");
  await withDevices(await devicesFromPath("/dev/zero"), "r")(s, { namespace: "k8s.io", id: "x" });
  assert.equal((s.linux!.devices as { path: string }[])[0]!.path, "/dev/zero");
  assert.deepEqual(s.linux!.resources!.devices!.at(-1), {
    allow: true,
    type: "c",
    major: 1,
    minor: 5,
    access: "r",
  });
});
