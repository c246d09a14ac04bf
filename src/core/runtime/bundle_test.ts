import assert from "node:assert/strict";
import { Bundle, remappedRootGid } from "./bundle.ts";

const spec = (linux: unknown) => new TextEncoder().encode(JSON.stringify({ ociVersion: "1.0.2", linux }));

Deno.test("Bundle.create() lets a user namespace's remapped root group traverse the bundle, as containerd", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const dirs = { root: `${dir}/root`, state: `${dir}/state` };
    const mapped = await Bundle.create(dirs, "ns", {
      id: "mapped",
      spec: spec({ gidMappings: [{ containerID: 0, hostID: 2000, size: 10000 }] }),
    });
    const st = await Deno.stat(mapped.path);
    assert.equal(st.mode! & 0o777, 0o710);
    assert.equal(st.gid, 2000);
    const plain = await Bundle.create(dirs, "ns", { id: "plain", spec: spec({}) });
    assert.equal((await Deno.stat(plain.path)).mode! & 0o777, 0o700);
    await mapped.delete();
    await plain.delete();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("remappedRootGid() finds the host gid of container gid 0", () => {
  assert.equal(remappedRootGid(spec({})), undefined);
  assert.equal(remappedRootGid(spec({ gidMappings: [] })), undefined);
  assert.equal(
    remappedRootGid(spec({
      gidMappings: [{ containerID: 1, hostID: 5, size: 1 }, { containerID: 0, hostID: 3000, size: 1 }],
    })),
    3000,
  );
  assert.throws(
    () => remappedRootGid(new TextEncoder().encode('{"gidMappings": [')),
    /Cannot read the OCI spec/,
  );
});

Deno.test("Bundle.create() writes config.json 0644, as containerd under its umask", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const b = await Bundle.create({ root: `${dir}/root`, state: `${dir}/state` }, "ns", {
      id: "c1",
      spec: spec({}),
    });
    assert.equal((await Deno.stat(`${b.path}/config.json`)).mode! & 0o777, 0o644);
    await b.delete();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Bundle.delete() removes the work folder before the bundle, so a cut-off delete can be finished", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const dirs = { root: `${dir}/root`, state: `${dir}/state` };
    const b = await Bundle.create(dirs, "ns", { id: "w", spec: spec({}) });
    const work = `${dirs.root}/ns/w`;
    await Deno.writeTextFile(`${work}/f`, "x");
    assert.equal(await Deno.readLink(`${b.path}/work`), work);
    // What a daemon killed after the work folder went leaves: the bundle, its link dangling.
    await Deno.remove(work, { recursive: true });
    await b.delete();
    await assert.rejects(Deno.stat(b.path), Deno.errors.NotFound);
    // A whole delete leaves neither.
    const c = await Bundle.create(dirs, "ns", { id: "w2", spec: spec({}) });
    await c.delete();
    await assert.rejects(Deno.stat(`${dirs.root}/ns/w2`), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(c.path), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
