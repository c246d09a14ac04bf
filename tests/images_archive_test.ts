/**
 * Images in and out: import and export tarballs (checked with skopeo and Debian's ctr), push to a
 * registry, and the content, leases and image verbs of the CLI next to ctr's.
 */

import assert from "node:assert/strict";
import tar from "tar-stream";
import { berth, ctr, startDaemon, type TestDaemon } from "./helpers/daemon.ts";
import { startRegistry } from "./helpers/registry.ts";
import { buildFixtureImages, type FixtureSet, pushFixtures } from "./fixtures/images.ts";

let fixtures: Promise<FixtureSet> | undefined;
function fixtureSet(): Promise<FixtureSet> {
  fixtures ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "berth-archive-test-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    return await buildFixtureImages(`${dir}/layout`);
  })();
  return fixtures;
}

function ok(r: { code: number; stdout: string; stderr: string }, what: string): string {
  assert.equal(r.code, 0, `${what} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const run = (d: TestDaemon, args: string[]) => berth(["--address", d.address, ...args]);

async function digests(d: TestDaemon): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const res of d.client().content.list({})) for (const i of res.info) out.add(i.digest);
  return out;
}

async function targets(d: TestDaemon): Promise<Map<string, string>> {
  const { images } = await d.client().images.list({});
  return new Map(images.map((i) => [i.name, i.target!.digest]));
}

async function tarDir(dir: string, out: string): Promise<void> {
  const r = await new Deno.Command("tar", { args: ["-C", dir, "-cf", out, "."] }).output();
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
}

Deno.test("images import → export → import keeps every digest, and skopeo reads the export", async () => {
  const set = await fixtureSet();
  const dir = await Deno.makeTempDir({ prefix: "berth-archive-" });
  await using a = await startDaemon();
  await using b = await startDaemon();
  try {
    await tarDir(set.dir, `${dir}/fixtures.tar`);
    const imported = ok(
      await run(a, ["images", "import", "--all-platforms", "--base-name", "berth/fx", `${dir}/fixtures.tar`]),
      "import",
    );
    assert.match(imported, /^unpacking berth\/fx:layered \(sha256:[0-9a-f]{64}\)\.\.\.done$/m);
    // Importing what is already there is quick and changes nothing (it hung once: a skipped blob's
    // tar entry was never read to its end).
    const again = ok(
      await run(a, ["images", "import", "--all-platforms", "--base-name", "berth/fx", `${dir}/fixtures.tar`]),
      "import again",
    );
    assert.match(again, /^unpacking berth\/fx:layered \(sha256:[0-9a-f]{64}\)\.\.\.done$/m);
    // Imported images are unpacked, as ctr's import does, so they can run at once.
    const check = ok(await run(a, ["images", "check"]), "check");
    assert.match(check, /^berth\/fx:layered\s.*\btrue\s*$/m);
    const names = ["single", "layered", "zstd", "uncompressed", "multi"];
    const first = await targets(a);
    for (const n of names) {
      assert.equal(first.get(`berth/fx:${n}`), set.images[n as "single"].descriptor.digest);
    }

    ok(
      await run(a, [
        "images",
        "export",
        "--all-platforms",
        `${dir}/out.tar`,
        ...names.map((n) => `berth/fx:${n}`),
      ]),
      "export",
    );
    ok(await run(b, ["images", "import", "--all-platforms", `${dir}/out.tar`]), "re-import");
    assert.deepEqual(await targets(b), first, "image names and targets survive the round trip");
    const before = await digests(a);
    const after = await digests(b);
    // The only blob that may differ is the first archive's own index.json, which its import stored
    // and, as no image names it, a collection after the import's lease went may already have removed.
    const layoutIndex = new Uint8Array(
      await crypto.subtle.digest("SHA-256", await Deno.readFile(`${set.dir}/index.json`)),
    );
    const layoutIndexDigest = "sha256:" +
      Array.from(layoutIndex, (x) => x.toString(16).padStart(2, "0")).join("");
    assert.deepEqual([...before].filter((x) => !after.has(x) && x !== layoutIndexDigest), []);
    let missing = 0;
    for (const img of Object.values(set.images)) {
      for (const m of img.manifests) {
        for (const blob of [m.descriptor, m.config, ...m.layers]) if (!after.has(blob.digest)) missing++;
      }
    }
    assert.equal(missing, 0);

    // An independent reader: skopeo inspects a one-image export.
    ok(await run(a, ["images", "export", `${dir}/one.tar`, "berth/fx:layered"]), "export one");
    const s = await new Deno.Command("skopeo", { args: ["inspect", `oci-archive:${dir}/one.tar`] }).output();
    assert.ok(s.success, new TextDecoder().decode(s.stderr));
    const info = JSON.parse(new TextDecoder().decode(s.stdout));
    assert.equal(info.Digest, set.images.layered.descriptor.digest);
    assert.deepEqual(info.Layers, set.images.layered.manifests[0]!.layers.map((l) => l.digest));

    // Debian's ctr imports Berth's export into Berth.
    ok(await run(b, ["images", "rm", "berth/fx:layered"]), "rm");
    const c = await ctr(b.address, ["images", "import", "--no-unpack", `${dir}/one.tar`]);
    assert.equal(c.code, 0, c.stderr);
    assert.equal((await targets(b)).get("berth/fx:layered"), set.images.layered.descriptor.digest);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("images import turns a docker save tarball into a Docker schema 2 image", async () => {
  const set = await fixtureSet();
  const m = set.images.uncompressed.manifests[0]!;
  const pack = tar.pack();
  const chunks: Uint8Array[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Uint8Array);
  })();
  const configName = `${m.config.digest.slice(7)}.json`;
  const layerName = "0123abcd/layer.tar";
  const add = (name: string, body: Uint8Array | string) =>
    new Promise<void>((res, rej) => pack.entry({ name }, body as string, (e) => (e ? rej(e) : res())));
  await add(configName, await set.blob(m.config.digest));
  await add(layerName, await set.blob(m.layers[0]!.digest));
  await add(
    "manifest.json",
    JSON.stringify([{ Config: configName, RepoTags: ["berth/docker:v1"], Layers: [layerName] }]),
  );
  pack.finalize();
  await done;
  const dir = await Deno.makeTempDir({ prefix: "berth-docker-save-" });
  await using d = await startDaemon();
  try {
    const file = `${dir}/save.tar`;
    const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
    let at = 0;
    for (const c of chunks) [bytes.set(c, at), at += c.byteLength];
    await Deno.writeFile(file, bytes);
    ok(await run(d, ["images", "import", file]), "import");
    const { image } = await d.client().images.get({ name: "docker.io/berth/docker:v1" });
    assert.equal(image!.target!.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
    const parts: Uint8Array[] = [];
    for await (const r of d.client().content.read({ digest: image!.target!.digest })) parts.push(r.data);
    const manifest = JSON.parse(new TextDecoder().decode(parts[0]));
    assert.equal(manifest.config.digest, m.config.digest);
    assert.equal(manifest.config.mediaType, "application/vnd.docker.container.image.v1+json");
    assert.deepEqual(manifest.layers, [{
      mediaType: "application/vnd.docker.image.rootfs.diff.tar",
      digest: m.layers[0]!.digest,
      size: m.layers[0]!.size,
    }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ctr content ingest, get and ls round-trip a blob through Berth, and content/leases verbs work", async () => {
  await using d = await startDaemon();
  const data = new TextEncoder().encode("hello berth content\n".repeat(1000));
  const child = new Deno.Command("ctr", {
    args: ["--address", d.address, "content", "ingest", "test-ingest"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(data);
  await w.close();
  const res = await child.output();
  assert.ok(res.success, new TextDecoder().decode(res.stderr));
  const hash = await crypto.subtle.digest("SHA-256", data);
  const digest = "sha256:" +
    Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("");
  assert.match((await ctr(d.address, ["content", "ls"])).stdout, new RegExp(digest));
  const got = await new Deno.Command("ctr", { args: ["--address", d.address, "content", "get", digest] })
    .output();
  assert.deepEqual(got.stdout, data);
  const mine = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      new URL("../main.ts", import.meta.url).pathname,
      "--address",
      d.address,
      "content",
      "get",
      digest,
    ],
  }).output();
  assert.deepEqual(mine.stdout, data);

  ok(await run(d, ["content", "label", digest, "berth.test=yes"]), "label");
  assert.match(
    ok(await run(d, ["content", "ls"]), "ls"),
    new RegExp(`${digest}\\s+19\\.5 KiB\\s+.*berth\\.test=yes`),
  );
  // The blob is loose (no image or lease holds it), so it is removed before any deletion (the lease's
  // below) has the garbage collector take it, as containerd's would.
  assert.equal(ok(await run(d, ["content", "rm", digest]), "content rm").trim(), digest);
  assert.doesNotMatch((await ctr(d.address, ["content", "ls", "-q"])).stdout, new RegExp(digest));
  const lease = ok(await run(d, ["leases", "create", "--id", "held", "purpose=test"]), "lease create").trim();
  assert.equal(lease, "held");
  assert.match(ok(await run(d, ["leases", "ls"]), "leases ls"), /held\s+\S+\s+.*purpose=test/);
  ok(await run(d, ["leases", "rm", "held"]), "lease rm");
  assert.equal(ok(await run(d, ["leases", "ls", "-q"]), "leases ls -q").trim(), "");
});

Deno.test("ctr content fetch through Berth records the image; berth tags, pushes and removes it", async () => {
  const set = await fixtureSet();
  await using reg = await startRegistry();
  await using target = await startRegistry();
  const pushed = await pushFixtures(reg, set, { names: ["layered"] });
  await using d = await startDaemon();
  const img = pushed.layered;
  const f = await ctr(d.address, ["content", "fetch", "--plain-http", img.reference]);
  assert.equal(f.code, 0, f.stderr);
  // containerd 1.6's Client.Fetch creates the image record (createNewImage), and so does Berth's store.
  assert.equal((await ctr(d.address, ["images", "ls", "-q"])).stdout.trim(), img.reference);
  assert.equal((await targets(d)).get(img.reference), img.descriptor.digest);
  const labels = (await d.client().content.info({ digest: img.descriptor.digest })).info!.labels;
  assert.equal(labels["containerd.io/gc.ref.content.l.2"], img.manifests[0]!.layers[2]!.digest);

  const copy = `${target.host}/copied/layered:v2`;
  ok(await run(d, ["images", "tag", img.reference, copy]), "tag");
  const p = ok(await run(d, ["images", "push", "--plain-http", copy]), "push");
  assert.match(p, new RegExp(`pushed: ${copy} ${img.descriptor.digest}`));
  const s = await new Deno.Command("skopeo", { args: ["inspect", "--tls-verify=false", `docker://${copy}`] })
    .output();
  assert.ok(s.success, new TextDecoder().decode(s.stderr));
  assert.equal(JSON.parse(new TextDecoder().decode(s.stdout)).Digest, img.descriptor.digest);

  assert.equal(ok(await run(d, ["images", "rm", copy]), "rm").trim(), copy);
  assert.deepEqual([...(await targets(d)).keys()], [img.reference]);
});
