import assert from "node:assert/strict";
import { dockerPaths } from "./paths.ts";
import {
  ANONYMOUS_LABEL,
  copyUp,
  createVolume,
  inspectVolume,
  listVolumes,
  pruneVolumes,
  removeVolume,
  volumesInUse,
} from "./volumes.ts";

async function withPaths(fn: (paths: ReturnType<typeof dockerPaths>, dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "berth-volumes-" });
  try {
    await fn(dockerPaths({ address: "/run/test.sock", namespace: "ns1", dataRoot: dir }), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("createVolume() lays a volume out as nerdctl does and returns an existing one unchanged", async () => {
  await withPaths(async (paths) => {
    const v = await createVolume(paths, "data1", { a: "1" });
    assert.equal(v.Name, "data1");
    assert.equal(v.Driver, "local");
    assert.equal(v.Scope, "local");
    assert.equal(v.Mountpoint, `${paths.dataStore}/volumes/ns1/data1/_data`);
    assert.deepEqual(v.Labels, { a: "1" });
    assert.match(v.CreatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.ok((await Deno.stat(v.Mountpoint)).isDirectory);
    const file = JSON.parse(await Deno.readTextFile(`${paths.dataStore}/volumes/ns1/data1/volume.json`));
    assert.deepEqual(file.labels, { a: "1" });
    const again = await createVolume(paths, "data1", { b: "2" });
    assert.deepEqual(again, v);
    assert.deepEqual(await inspectVolume(paths, "data1"), v);
  });
});

Deno.test("createVolume() names an anonymous volume with 64 hex and refuses bad names", async () => {
  await withPaths(async (paths) => {
    const v = await createVolume(paths);
    assert.match(v.Name, /^[0-9a-f]{64}$/);
    assert.ok(ANONYMOUS_LABEL in v.Labels);
    for (const bad of ["-x", ".x", "a/b", "a b", "..", "_x"]) {
      await assert.rejects(createVolume(paths, bad), /Invalid volume name/);
    }
    await assert.rejects(inspectVolume(paths, "missing"), /No such volume: missing/);
    await assert.rejects(inspectVolume(paths, "../x"), /No such volume/);
  });
});

Deno.test("listVolumes() filters by label, name and dangling", async () => {
  await withPaths(async (paths) => {
    await createVolume(paths, "web-data", { app: "web", tier: "front" });
    await createVolume(paths, "db-data", { app: "db" });
    await createVolume(paths, "scratch");
    const names = async (f: Parameters<typeof listVolumes>[1]) =>
      (await listVolumes(paths, f)).map((v) => v.Name);
    assert.deepEqual(await names({}), ["db-data", "scratch", "web-data"]);
    assert.deepEqual(await names({ label: ["app"] }), ["db-data", "web-data"]);
    assert.deepEqual(await names({ label: ["app=web"] }), ["web-data"]);
    assert.deepEqual(await names({ label: ["app", "tier=front"] }), ["web-data"]);
    assert.deepEqual(await names({ name: ["data"] }), ["db-data", "web-data"]);
    const inUse = new Set(["db-data"]);
    assert.deepEqual(await names({ dangling: true, inUse }), ["scratch", "web-data"]);
    assert.deepEqual(await names({ dangling: false, inUse }), ["db-data"]);
    // Another namespace sees none of them.
    assert.deepEqual(await listVolumes({ ...paths, namespace: "other" }), []);
  });
});

Deno.test("volumesInUse() reads nerdctl/mounts and nerdctl/anonymous-volumes", () => {
  const used = volumesInUse([
    {
      id: "c1",
      labels: {
        "nerdctl/mounts": JSON.stringify([
          { Type: "volume", Name: "v1", Source: "/x/v1/_data", Destination: "/data", RW: true },
          { Type: "bind", Source: "/host", Destination: "/host", RW: false },
        ]),
      },
    },
    { id: "c2", labels: { "nerdctl/anonymous-volumes": JSON.stringify(["anon"]) } },
    { id: "c3", labels: { "nerdctl/mounts": "not json" } },
    {
      id: "c4",
      labels: { "nerdctl/mounts": JSON.stringify([{ Type: "volume", Name: "v1", Destination: "/d" }]) },
    },
  ]);
  assert.deepEqual([...used.entries()], [["v1", ["c1", "c4"]], ["anon", ["c2"]]]);
});

Deno.test("removeVolume() refuses a volume in use; pruneVolumes() removes unused anonymous ones, or all with all", async () => {
  await withPaths(async (paths) => {
    const v = await createVolume(paths, "busy");
    await Deno.writeTextFile(`${v.Mountpoint}/f`, "x");
    await createVolume(paths, "idle");
    const anon = await createVolume(paths);
    const inUseBy = new Map([["busy", ["0123456789abcdef0123"]]]);
    await assert.rejects(
      removeVolume(paths, "busy", { inUseBy }),
      /Cannot remove volume "busy": volume is in use: 0123456789ab/,
    );
    await assert.rejects(removeVolume(paths, "nope", { inUseBy }), /No such volume: nope/);
    assert.deepEqual(await pruneVolumes(paths, { inUseBy }), [anon.Name]);
    assert.deepEqual(await pruneVolumes(paths, { inUseBy, all: true }), ["idle"]);
    assert.deepEqual((await listVolumes(paths)).map((x) => x.Name), ["busy"]);
    await removeVolume(paths, "busy", { inUseBy: new Set() });
    assert.deepEqual(await listVolumes(paths), []);
    assert.deepEqual([...Deno.readDirSync(`${paths.dataStore}/volumes/ns1`)], []);
  });
});

Deno.test("copyUp() fills an empty new volume once, with links kept as links", async () => {
  await withPaths(async (paths, dir) => {
    const image = `${dir}/image/data`;
    await Deno.mkdir(`${image}/sub`, { recursive: true });
    await Deno.chmod(image, 0o750);
    await Deno.writeTextFile(`${image}/sub/f`, "from image");
    await Deno.symlink("/etc/shadow", `${image}/escape`);
    const v = await createVolume(paths, "vol");
    const r = await copyUp(image, v.Mountpoint);
    assert.equal(r?.files, 1);
    assert.equal(await Deno.readTextFile(`${v.Mountpoint}/sub/f`), "from image");
    assert.equal(await Deno.readLink(`${v.Mountpoint}/escape`), "/etc/shadow");
    assert.equal((await Deno.stat(v.Mountpoint)).mode! & 0o777, 0o750);
    // Emptied by its user: not filled again.
    await Deno.remove(`${v.Mountpoint}/sub`, { recursive: true });
    await Deno.remove(`${v.Mountpoint}/escape`);
    assert.equal(await copyUp(image, v.Mountpoint), undefined);
    assert.deepEqual([...Deno.readDirSync(v.Mountpoint)], []);
  });
});

Deno.test("copyUp() leaves a volume that already has content alone", async () => {
  await withPaths(async (paths, dir) => {
    await Deno.mkdir(`${dir}/image`);
    await Deno.writeTextFile(`${dir}/image/f`, "image");
    const v = await createVolume(paths, "vol");
    await Deno.writeTextFile(`${v.Mountpoint}/mine`, "user");
    assert.equal(await copyUp(`${dir}/image`, v.Mountpoint), undefined);
    assert.deepEqual([...Deno.readDirSync(v.Mountpoint)].map((e) => e.name), ["mine"]);
  });
});
