import assert from "node:assert/strict";
import { fsSyscalls } from "../../ffi/fs.ts";
import { copyPath, parseCpArg, tarFromContainer, untarIntoContainer } from "./cp.ts";

const isRoot = Deno.uid() === 0;
const exists = (p: string) => Deno.lstat(p).then(() => true, () => false);

interface Fixture {
  top: string;
  root: string;
  host: string;
  victim: string;
}

/** A container root full of links that point at the host, a host folder, and a victim folder. */
async function fixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const top = await Deno.makeTempDir({ prefix: "berth-cp-" });
  const f = { top, root: `${top}/root`, host: `${top}/host`, victim: `${top}/victim` };
  try {
    await Deno.mkdir(`${f.root}/etc`, { recursive: true });
    await Deno.mkdir(`${f.root}/data/dir`, { recursive: true });
    await Deno.mkdir(f.host);
    await Deno.mkdir(f.victim);
    await Deno.writeTextFile(`${f.victim}/secret`, "host secret");
    await Deno.writeTextFile(`${f.root}/etc/passwd`, "container passwd");
    await Deno.writeTextFile(`${f.root}/data/dir/f`, "in container");
    await Deno.symlink(f.victim, `${f.root}/abs-escape`);
    await Deno.symlink(`../../../../../../..${f.victim}`, `${f.root}/data/rel-escape`);
    await Deno.symlink(`${f.victim}/secret`, `${f.root}/secret-link`);
    await Deno.symlink("/etc/passwd", `${f.root}/passwd-link`);
    await fn(f);
  } finally {
    await Deno.remove(top, { recursive: true });
  }
}

Deno.test("parseCpArg() splits CONTAINER:PATH and leaves local paths alone", () => {
  assert.deepEqual(parseCpArg("c1:/etc"), { container: "c1", path: "/etc" });
  assert.deepEqual(parseCpArg("c1:"), { container: "c1", path: "/" });
  assert.deepEqual(parseCpArg("./a:b"), { path: "./a:b" });
  assert.deepEqual(parseCpArg("/x:y"), { path: "/x:y" });
  assert.deepEqual(parseCpArg("-"), { path: "-" });
});

Deno.test("copyPath() follows Docker's rules for files and folders", async () => {
  await fixture(async (f) => {
    const c = (path: string) => ({ root: f.root, path });
    const h = (path: string) => ({ path: `${f.host}/${path}` });
    await Deno.writeTextFile(`${f.host}/file`, "from host");
    await copyPath(h("file"), c("/data"));
    assert.equal(await Deno.readTextFile(`${f.root}/data/file`), "from host");
    await copyPath(h("file"), c("/data/renamed"));
    assert.equal(await Deno.readTextFile(`${f.root}/data/renamed`), "from host");
    await assert.rejects(copyPath(h("file"), c("/nodir/")), /Destination directory .* does not exist/);
    await assert.rejects(copyPath(h("file"), c("/nodir/x")), /parent directory does not exist/);
    // A folder: into an existing folder under its name; to a new name as that folder; `/.` its content.
    await copyPath(c("/data/dir"), h(""));
    assert.equal(await Deno.readTextFile(`${f.host}/dir/f`), "in container");
    await copyPath(c("/data/dir"), h("new"));
    assert.equal(await Deno.readTextFile(`${f.host}/new/f`), "in container");
    await Deno.mkdir(`${f.host}/flat`);
    await copyPath(c("/data/dir/."), h("flat"));
    assert.equal(await Deno.readTextFile(`${f.host}/flat/f`), "in container");
    await assert.rejects(copyPath(c("/data/dir"), h("file")), /Cannot copy a directory to a file/);
    await assert.rejects(copyPath(c("/etc/passwd/"), h("x")), /not a directory/);
    await assert.rejects(copyPath(c("/missing"), h("x")), /Could not find the file \/missing/);
  });
});

Deno.test("copyPath() out of a container never reads the host through the container's links", async () => {
  await fixture(async (f) => {
    const c = (path: string) => ({ root: f.root, path });
    // Without -L the link is copied as a link; with -L it is followed inside the root.
    await copyPath(c("/secret-link"), { path: `${f.host}/a` });
    assert.equal(await Deno.readLink(`${f.host}/a`), `${f.victim}/secret`);
    await assert.rejects(
      copyPath(c("/secret-link"), { path: `${f.host}/b` }, { followLink: true }),
      /Could not find/,
    );
    await copyPath(c("/passwd-link"), { path: `${f.host}/c` }, { followLink: true });
    assert.equal(await Deno.readTextFile(`${f.host}/c`), "container passwd");
    await assert.rejects(copyPath(c("/abs-escape/secret"), { path: `${f.host}/d` }), /Could not find/);
    await assert.rejects(copyPath(c("/data/rel-escape/secret"), { path: `${f.host}/e` }), /Could not find/);
    assert.ok(!(await exists(`${f.host}/d`)) && !(await exists(`${f.host}/e`)));
  });
});

Deno.test("copyPath() into a container never writes the host through the container's links", async () => {
  await fixture(async (f) => {
    const c = (path: string) => ({ root: f.root, path });
    await Deno.writeTextFile(`${f.host}/secret`, "overwritten");
    // The destination folder is a link to the victim: resolved inside the root, where it does not exist.
    await assert.rejects(copyPath({ path: `${f.host}/secret` }, c("/abs-escape/")), /does not exist/);
    await assert.rejects(copyPath({ path: `${f.host}/secret` }, c("/data/rel-escape/")), /does not exist/);
    // A link at the destination file: followed inside the root (its target's folder does not exist there).
    await assert.rejects(copyPath({ path: `${f.host}/secret` }, c("/secret-link")), /parent directory/);
    await copyPath({ path: `${f.host}/secret` }, c("/passwd-link"));
    assert.equal(await Deno.readTextFile(`${f.root}/etc/passwd`), "overwritten");
    assert.equal(await Deno.readTextFile(`${f.victim}/secret`), "host secret");
    assert.deepEqual([...Deno.readDirSync(f.victim)].map((e) => e.name), ["secret"]);
  });
});

Deno.test("copyPath() gives files copied in to root, out to the caller, and keeps owners with archive", {
  ignore: !isRoot,
}, async () => {
  await fixture(async (f) => {
    await Deno.writeTextFile(`${f.host}/owned`, "x");
    fsSyscalls().lchown(`${f.host}/owned`, 1000, 1001);
    await copyPath({ path: `${f.host}/owned` }, { root: f.root, path: "/data/plain" });
    await copyPath({ path: `${f.host}/owned` }, { root: f.root, path: "/data/kept" }, { archive: true });
    const plain = await Deno.stat(`${f.root}/data/plain`);
    const kept = await Deno.stat(`${f.root}/data/kept`);
    assert.deepEqual([plain.uid, plain.gid], [0, 0]);
    assert.deepEqual([kept.uid, kept.gid], [1000, 1001]);
    await copyPath({ root: f.root, path: "/data/kept" }, { path: `${f.host}/out` });
    const out = await Deno.stat(`${f.host}/out`);
    assert.deepEqual([out.uid, out.gid], [Deno.uid(), Deno.gid()]);
  });
});

Deno.test("tarFromContainer() and untarIntoContainer() carry a tree; hostile entries stay inside", async () => {
  await fixture(async (f) => {
    const chunks: Uint8Array[] = [];
    await tarFromContainer(f.root, "/data/dir", new WritableStream({ write: (c) => void chunks.push(c) }));
    const other = `${f.top}/other`;
    await Deno.mkdir(`${other}/dst`, { recursive: true });
    await untarIntoContainer(ReadableStream.from(chunks), other, "/dst");
    assert.equal(await Deno.readTextFile(`${other}/dst/dir/f`), "in container");

    // A tar that plants a link to the victim, then writes through it, and one that climbs with `..`.
    const tar = (await import("tar-stream")).default.pack();
    tar.entry({ name: "esc", type: "symlink", linkname: f.victim });
    tar.entry({ name: "esc/secret", type: "file" }, "pwned");
    tar.entry({ name: "../../victim/new", type: "file" }, "pwned");
    tar.entry({ name: "ok", type: "file", mode: 0o600 }, "fine");
    tar.finalize();
    const bytes: Uint8Array[] = [];
    for await (const c of tar as AsyncIterable<Uint8Array>) bytes.push(c);
    const skipped: string[] = [];
    await untarIntoContainer(ReadableStream.from(bytes), other, "/dst", { onSkip: (n) => skipped.push(n) });
    assert.equal(await Deno.readTextFile(`${f.victim}/secret`), "host secret");
    assert.deepEqual([...Deno.readDirSync(f.victim)].map((e) => e.name), ["secret"]);
    assert.equal(await Deno.readTextFile(`${other}${f.victim}/secret`), "pwned");
    assert.equal(await Deno.readTextFile(`${other}/dst/ok`), "fine");
    assert.deepEqual(skipped, ["../../victim/new"]);
  });
});

Deno.test("copyPath() treats a root that is itself a link (/proc/<pid>/root) as the folder it names", async () => {
  await fixture(async (f) => {
    const proc = `${f.top}/proc-root`;
    await Deno.symlink(f.root, proc);
    await Deno.writeTextFile(`${f.host}/file`, "x");
    await copyPath({ path: `${f.host}/file` }, { root: proc, path: "/new" });
    await copyPath({ path: `${f.host}/file` }, { root: proc, path: "/data/up/../../../top" });
    assert.equal(await Deno.readTextFile(`${f.root}/new`), "x");
    assert.equal(await Deno.readTextFile(`${f.root}/top`), "x");
    await copyPath({ root: proc, path: "/" }, { path: `${f.host}/all` });
    assert.ok((await Deno.lstat(`${f.host}/all`)).isDirectory);
    assert.equal(await Deno.readTextFile(`${f.host}/all/etc/passwd`), "container passwd");
    const chunks: Uint8Array[] = [];
    await tarFromContainer(proc, "/", new WritableStream({ write: (c) => void chunks.push(c) }));
    await untarIntoContainer(ReadableStream.from(chunks), proc, "/");
    assert.equal(await Deno.readTextFile(`${f.root}/etc/passwd`), "container passwd");
  });
});
