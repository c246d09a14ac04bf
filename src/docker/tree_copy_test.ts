import assert from "node:assert/strict";
import { fsSyscalls } from "../../ffi/fs.ts";
import { copyChildren, copyTree } from "./tree_copy.ts";

const isRoot = Deno.uid() === 0;

async function sourceTree(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/src/sub`, { recursive: true });
  await Deno.writeTextFile(`${dir}/src/a`, "A", { mode: 0o640 });
  await Deno.chmod(`${dir}/src/a`, 0o640);
  await Deno.writeTextFile(`${dir}/src/sub/b`, "B");
  await Deno.chmod(`${dir}/src/sub`, 0o711);
  await Deno.symlink("/etc/passwd", `${dir}/src/abs-link`);
  await Deno.symlink("../a", `${dir}/src/sub/rel-link`);
  await Deno.link(`${dir}/src/a`, `${dir}/src/a-hard`);
  if (isRoot) {
    fsSyscalls().lchown(`${dir}/src/sub/b`, 1234, 5678);
    fsSyscalls().lchown(`${dir}/src/abs-link`, 42, 43);
    new Deno.Command("mkfifo", { args: [`${dir}/src/fifo`] }).outputSync();
  }
  fsSyscalls().lutimes(`${dir}/src/sub/b`, 1_000_000_000, 1_000_000_000);
  fsSyscalls().lutimes(`${dir}/src/sub`, 2_000_000_000, 2_000_000_000);
}

Deno.test("copyTree() copies files, folders, links as links, hard links, modes, owners and times", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-treecopy-" });
  try {
    await sourceTree(dir);
    const skipped: string[] = [];
    const r = await copyTree(`${dir}/src`, `${dir}/dst`, { onSkip: (p) => skipped.push(p) });
    assert.equal(await Deno.readTextFile(`${dir}/dst/a`), "A");
    assert.equal((await Deno.stat(`${dir}/dst/a`)).mode! & 0o7777, 0o640);
    assert.equal((await Deno.stat(`${dir}/dst/sub`)).mode! & 0o7777, 0o711);
    assert.equal(await Deno.readLink(`${dir}/dst/abs-link`), "/etc/passwd");
    assert.equal(await Deno.readLink(`${dir}/dst/sub/rel-link`), "../a");
    assert.equal((await Deno.stat(`${dir}/dst/a`)).ino, (await Deno.stat(`${dir}/dst/a-hard`)).ino);
    assert.equal((await Deno.stat(`${dir}/dst/sub/b`)).mtime!.getTime(), 1_000_000_000);
    assert.equal((await Deno.stat(`${dir}/dst/sub`)).mtime!.getTime(), 2_000_000_000);
    assert.equal(r.hardlinks, 1);
    if (isRoot) {
      const b = await Deno.stat(`${dir}/dst/sub/b`);
      assert.deepEqual([b.uid, b.gid], [1234, 5678]);
      const l = await Deno.lstat(`${dir}/dst/abs-link`);
      assert.deepEqual([l.uid, l.gid], [42, 43]);
      assert.deepEqual(skipped, [`${dir}/src/fifo`]);
      assert.ok(!(await Deno.lstat(`${dir}/dst/fifo`).then(() => true, () => false)));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("copyTree() with an owner gives every entry that owner", { ignore: !isRoot }, async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-treecopy-" });
  try {
    await sourceTree(dir);
    await copyTree(`${dir}/src`, `${dir}/dst`, { owner: { uid: 7, gid: 8 } });
    for (const p of ["", "/a", "/sub", "/sub/b", "/abs-link"]) {
      const s = await Deno.lstat(`${dir}/dst${p}`);
      assert.deepEqual([s.uid, s.gid], [7, 8], p);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("copyTree() replaces a symlink planted at the destination instead of writing through it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-treecopy-" });
  try {
    await sourceTree(dir);
    await Deno.mkdir(`${dir}/dst`);
    await Deno.mkdir(`${dir}/victim`);
    await Deno.writeTextFile(`${dir}/victim/a`, "untouched");
    // Hostile destination: `a` is a link to a file outside, `sub` a link to a folder outside.
    await Deno.symlink(`${dir}/victim/a`, `${dir}/dst/a`);
    await Deno.symlink(`${dir}/victim`, `${dir}/dst/sub`);
    await copyChildren(`${dir}/src`, `${dir}/dst`);
    assert.equal(await Deno.readTextFile(`${dir}/victim/a`), "untouched");
    assert.deepEqual([...Deno.readDirSync(`${dir}/victim`)].map((e) => e.name), ["a"]);
    assert.ok((await Deno.lstat(`${dir}/dst/a`)).isFile);
    assert.ok((await Deno.lstat(`${dir}/dst/sub`)).isDirectory);
    assert.equal(await Deno.readTextFile(`${dir}/dst/sub/b`), "B");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("copyTree() refuses to replace a folder with a file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-treecopy-" });
  try {
    await Deno.writeTextFile(`${dir}/f`, "x");
    await Deno.mkdir(`${dir}/d`);
    await assert.rejects(
      copyTree(`${dir}/f`, `${dir}/d`),
      /Cannot overwrite directory .*\/d with non-directory/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
