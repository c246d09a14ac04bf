/**
 * The Unpacker against real snapshotters, a real content store and real mounts: fixture images (and
 * hostile ones) are written into a ContentStore and unpacked into overlayfs and native snapshots.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { ContentStore } from "../src/core/content/mod.ts";
import { WalkingDiffer } from "../src/core/diff/mod.ts";
import { contentBlobReader } from "../src/plugins/diff.ts";
import { gzip, makeTar, patchFirstSize, sha256 } from "../src/core/diff/test_util.ts";
import { concatBytes } from "../src/base/bytes.ts";
import { errorKind } from "../src/base/errors.ts";
import { MetadataDB } from "../src/core/metadata/db.ts";
import { GarbageCollector } from "../src/core/gc/mod.ts";
import { ImageStore } from "../src/core/images/mod.ts";
import { LeaseManager } from "../src/core/leases/mod.ts";
import { mountAll, unmountAll } from "../src/core/mount/mod.ts";
import { NativeSnapshotter, OverlaySnapshotter, type Snapshotter } from "../src/core/snapshots/mod.ts";
import { chainId, chainIds } from "../src/oci/chain_id.ts";
import { Unpacker, type UnpackImage } from "../src/core/unpack/mod.ts";
import { encryptLayer, MediaTypeEnc, parsePrivateKey, parsePublicKey } from "../src/oci/imgcrypt/mod.ts";
import { buildFixtureImages, type FixtureManifest, type FixtureSet } from "./fixtures/images.ts";

const NS = "default";
const GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";

let fixtures: Promise<FixtureSet> | undefined;
let fixtureDir: string | undefined;
function fixtureSet(): Promise<FixtureSet> {
  fixtures ??= (async () => {
    fixtureDir = await Deno.makeTempDir({ prefix: "berth-unpack-fixtures-" });
    return await buildFixtureImages(fixtureDir);
  })();
  return fixtures;
}
globalThis.addEventListener("unload", () => {
  if (fixtureDir) Deno.removeSync(fixtureDir, { recursive: true });
});

interface Env {
  readonly dir: string;
  readonly db: MetadataDB;
  readonly content: ContentStore;
  readonly snapshotters: Map<string, Snapshotter>;
  readonly unpacker: Unpacker;
}

async function withEnv(fn: (env: Env) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-unpack-" });
  const db = new MetadataDB(`${dir}/meta.db`);
  try {
    const content = new ContentStore(`${dir}/content`, db);
    const snapshotters = new Map<string, Snapshotter>([
      ["overlayfs", new OverlaySnapshotter(`${dir}/overlayfs`, db)],
      ["native", new NativeSnapshotter(`${dir}/native`, db)],
    ]);
    await Deno.mkdir(`${dir}/tmp`);
    await fn({
      dir,
      db,
      content,
      snapshotters,
      unpacker: new Unpacker({
        content,
        snapshotters,
        differ: new WalkingDiffer(contentBlobReader(content), { tempDir: `${dir}/tmp` }),
      }),
    });
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function ingest(content: ContentStore, data: Uint8Array): Promise<string> {
  const digest = sha256(data);
  const w = await content.writer(NS, `test-${digest}`, { expected: digest, total: data.length }).catch(
    (err) => {
      if (errorKind(err) === "already_exists") return undefined;
      throw err;
    },
  );
  if (!w) return digest;
  await w.write(data);
  await w.commit(data.length, digest);
  return digest;
}

/** Writes a fixture manifest's config and layers into the store; returns what unpack() takes. */
async function ingestFixture(
  content: ContentStore,
  set: FixtureSet,
  m: FixtureManifest,
): Promise<UnpackImage> {
  for (const d of [m.config, ...m.layers]) await ingest(content, await set.blob(d.digest));
  return { manifest: m.descriptor, config: m.config, layers: m.layers };
}

/** An image from raw layer tars (gzipped here); `diffIds` overrides the config's rootfs.diff_ids. */
async function ingestLayers(
  content: ContentStore,
  tars: readonly Uint8Array[],
  options: { diffIds?: string[]; blobs?: Uint8Array[] } = {},
): Promise<UnpackImage & { diffIds: string[] }> {
  const blobs = options.blobs ?? tars.map(gzip);
  const layers = [];
  for (const b of blobs) layers.push({ mediaType: GZIP, digest: await ingest(content, b), size: b.length });
  const diffIds = options.diffIds ?? tars.map(sha256);
  const config = new TextEncoder().encode(JSON.stringify({ rootfs: { type: "layers", diff_ids: diffIds } }));
  const configDesc = {
    mediaType: "application/vnd.oci.image.config.v1+json",
    digest: await ingest(content, config),
    size: config.length,
  };
  return {
    manifest: { ...configDesc, digest: sha256(new Uint8Array([1, ...config])) },
    config: configDesc,
    layers,
    diffIds,
  };
}

async function withView<T>(
  env: Env,
  snapshotter: string,
  parent: string,
  fn: (root: string) => Promise<T>,
): Promise<T> {
  const sn = env.snapshotters.get(snapshotter)!;
  const key = `view-${crypto.randomUUID()}`;
  const mounts = await sn.view(NS, key, { parent });
  const root = await Deno.makeTempDir({ dir: `${env.dir}/tmp` });
  mountAll(mounts, root);
  try {
    return await fn(root);
  } finally {
    unmountAll(root);
    await Deno.remove(root);
    await sn.remove(NS, key);
  }
}

async function assertRootfs(root: string, m: FixtureManifest): Promise<void> {
  for (const p of m.rootfs.present) {
    const st = await Deno.lstat(`${root}/${p}`);
    if (p.endsWith("/")) assert.ok(st.isDirectory, `${p} is a directory`);
  }
  for (const p of m.rootfs.absent) await assert.rejects(Deno.lstat(`${root}/${p}`), Deno.errors.NotFound, p);
  for (const [p, text] of Object.entries(m.rootfs.contents)) {
    assert.equal(await Deno.readTextFile(`${root}/${p}`), text);
  }
  for (const [p, target] of Object.entries(m.rootfs.symlinks)) {
    assert.equal(await Deno.readLink(`${root}/${p}`), target);
  }
}

async function keys(
  sn: Snapshotter,
): Promise<{ name: string; kind: string; parent: string; labels: Readonly<Record<string, string>> }[]> {
  const out: { name: string; kind: string; parent: string; labels: Readonly<Record<string, string>> }[] = [];
  await sn.walk(NS, (i) => void out.push(i));
  return out;
}

Deno.test('chainIds() follows the OCI image spec: sha256 of "<parent chain> <diff id>"', async () => {
  const a = `sha256:${"a".repeat(64)}`;
  const b = `sha256:${"b".repeat(64)}`;
  const [c1, c2] = await chainIds([a, b]);
  assert.equal(c1, a);
  assert.equal(c2, sha256(new TextEncoder().encode(`${a} ${b}`)));
  assert.equal(await chainId([]), "");
});

for (const snapshotter of ["overlayfs", "native"]) {
  Deno.test(`Unpacker.unpack() commits every layer of the layered image as chain-ID snapshots (${snapshotter})`, async () => {
    const set = await fixtureSet();
    await withEnv(async (env) => {
      const m = set.images.layered.manifests[0]!;
      const image = await ingestFixture(env.content, set, m);
      const states: string[] = [];
      const { chainId: top } = await env.unpacker.unpack(NS, image, {
        snapshotter,
        onLayer: (i, s) => states.push(`${i}:${s}`),
      });
      const chain = await chainIds(m.layers.map((l) => l.diffId));
      assert.equal(top, chain[2]);
      assert.deepEqual(states, [
        "0:waiting",
        "0:unpacking",
        "0:done",
        "1:waiting",
        "1:unpacking",
        "1:done",
        "2:waiting",
        "2:unpacking",
        "2:done",
      ]);
      const sn = env.snapshotters.get(snapshotter)!;
      const infos = await keys(sn);
      assert.deepEqual(
        infos.map((i) => [i.name, i.kind, i.parent]).sort(),
        [
          [chain[0], "committed", ""],
          [chain[1], "committed", chain[0]],
          [chain[2], "committed", chain[1]],
        ].sort(),
      );
      for (const i of infos) assert.equal(i.labels["containerd.io/snapshot.ref"], i.name);
      for (const l of m.layers) {
        assert.equal((await env.content.info(NS, l.digest)).labels["containerd.io/uncompressed"], l.diffId);
      }
      assert.equal(
        (await env.content.info(NS, m.config.digest)).labels[`containerd.io/gc.ref.snapshot.${snapshotter}`],
        top,
      );
      await withView(env, snapshotter, top, (root) => assertRootfs(root, m));

      // A second unpack finds every chain and does nothing.
      const again: string[] = [];
      await env.unpacker.unpack(NS, image, { snapshotter, onLayer: (i, s) => again.push(`${i}:${s}`) });
      assert.deepEqual(again, ["0:exists", "1:exists", "2:exists"]);
    });
  });
}

Deno.test("Unpacker.unpack() run twice at once on one image leaves one chain and no extraction snapshot", async () => {
  const set = await fixtureSet();
  await withEnv(async (env) => {
    const m = set.images.layered.manifests[0]!;
    const image = await ingestFixture(env.content, set, m);
    const [a, b] = await Promise.all([
      env.unpacker.unpack(NS, image, { snapshotter: "overlayfs" }),
      env.unpacker.unpack(NS, image, { snapshotter: "overlayfs" }),
    ]);
    assert.equal(a.chainId, b.chainId);
    const infos = await keys(env.snapshotters.get("overlayfs")!);
    assert.equal(infos.length, 3);
    assert.ok(infos.every((i) => i.kind === "committed"));
  });
});

Deno.test("Unpacker.unpack() unpacks layer N while waiting for layer N+1 (layerReady)", async () => {
  const set = await fixtureSet();
  await withEnv(async (env) => {
    const m = set.images.layered.manifests[0]!;
    const image = await ingestFixture(env.content, set, m);
    const events: string[] = [];
    const gates = m.layers.map(() => Promise.withResolvers<void>());
    const p = env.unpacker.unpack(NS, image, {
      snapshotter: "overlayfs",
      layerReady: (i) => {
        events.push(`ready? ${i}`);
        return gates[i]!.promise;
      },
      onLayer: (i, s) => events.push(`${i}:${s}`),
    });
    gates[0]!.resolve();
    // Layer 0 completes while layer 1 is still "downloading".
    while (!events.includes("ready? 1")) await new Promise((r) => setTimeout(r, 5));
    assert.ok(events.includes("0:done"));
    assert.ok(!events.includes("1:unpacking"));
    gates[1]!.resolve();
    gates[2]!.resolve();
    await p;
    assert.equal(events.at(-1), "2:done");
  });
});

Deno.test("Unpacker.unpack() holds the chains it finds committed, so a collection meanwhile keeps the parents it needs", async () => {
  await withEnv(async (env) => {
    const native = env.snapshotters.get("native") as NativeSnapshotter;
    const leases = new LeaseManager(env.db);
    const gc = new GarbageCollector({
      db: env.db,
      content: env.content,
      images: new ImageStore(env.db),
      leases,
      snapshotters: new Map([["native", native]]),
      namespaces: () => [NS],
    });
    const tars = await Promise.all(
      ["a", "b", "c"].map((name) => makeTar([{ header: { name, mode: 0o644 }, body: name }])),
    );
    // An image of the first two layers was unpacked, then its record removed: its chains are garbage.
    await env.unpacker.unpack(NS, await ingestLayers(env.content, tars.slice(0, 2)), {
      snapshotter: "native",
    });
    const image = await ingestLayers(env.content, tars);
    // A pull of an image on the same base holds its blobs and whatever the unpacker hands it.
    await leases.create(NS, { id: "pull" });
    const hold = (type: string, id: string) => leases.addResource(NS, "pull", { type, id });
    for (const d of [image.config, ...image.layers]) await hold("content", d.digest);
    const top = Promise.withResolvers<void>();
    const downloaded = Promise.withResolvers<void>();
    const unpacking = env.unpacker.unpack(NS, image, {
      snapshotter: "native",
      onSnapshot: (key) => hold("snapshots/native", key),
      layerReady: (i) => {
        if (i < 2) return Promise.resolve();
        top.resolve();
        return downloaded.promise;
      },
    });
    // While the top layer still downloads, a collection runs (a deletion elsewhere asked for one).
    await top.promise;
    await gc.collect();
    downloaded.resolve();
    const { chainId } = await unpacking;
    assert.equal(chainId, (await chainIds(image.diffIds)).at(-1));
  });
});

Deno.test("Unpacker.unpack() waits for an encrypted layer's download (layerReady) when it is not live, then checks its HMAC and applies it", async () => {
  await withEnv(async (env) => {
    const tar = await makeTar([{ header: { name: "secret.txt", mode: 0o644 }, body: "decrypted" }]);
    const plain = gzip(tar);
    const kp = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = (k: string | Buffer) => new TextEncoder().encode(k as string);
    const pub = parsePublicKey(pem(kp.publicKey.export({ type: "spki", format: "pem" })), "rsa.pub");
    const priv = parsePrivateKey(pem(kp.privateKey.export({ type: "pkcs1", format: "pem" })), "rsa.pem");
    const enc = encryptLayer(
      (async function* () {
        yield plain;
      })(),
      { mediaType: GZIP, digest: sha256(plain), size: plain.length },
      [pub],
    );
    const parts: Uint8Array[] = [];
    for await (const c of enc.stream) parts.push(c);
    const cipher = concatBytes(parts);
    const image = {
      ...await ingestLayers(env.content, [tar], { blobs: [] }),
      layers: [{
        mediaType: MediaTypeEnc.LayerGzip,
        digest: sha256(cipher),
        size: cipher.length,
        annotations: await enc.finalize(),
      }],
    };
    // A pull whose download of the layer has not begun when the unpacker reaches it: nothing live yet,
    // and the blob is not in the store until the download commits it.
    const downloaded = Promise.withResolvers<void>();
    const unpacking = env.unpacker.unpack(NS, image, {
      snapshotter: "overlayfs",
      decryptionKeys: () => Promise.resolve([priv]),
      layerStream: () => undefined,
      layerReady: () => downloaded.promise,
    });
    await new Promise((r) => setTimeout(r, 50));
    await ingest(env.content, cipher);
    downloaded.resolve();
    const { chainId } = await unpacking;
    assert.equal(chainId, (await chainIds(image.diffIds))[0]);
    assert.equal(
      await withView(env, "overlayfs", chainId, (root) => Deno.readTextFile(`${root}/secret.txt`)),
      "decrypted",
    );
  });
});

Deno.test("Unpacker.unpack() stops at a hostile layer: clear error, no committed or active snapshot for it, nothing outside changed", async () => {
  await withEnv(async (env) => {
    const outside = `${env.dir}/outside`;
    await Deno.mkdir(outside);
    const base = await makeTar([
      { header: { name: "etc", type: "directory", mode: 0o755 } },
      { header: { name: "etc/ok", mode: 0o644 }, body: "ok" },
      { header: { name: "link", type: "symlink", linkname: outside } },
    ]);
    const hostile: [string, Uint8Array][] = [
      ["dot-dot", await makeTar([{ header: { name: "../../../escape", mode: 0o644 }, body: "x" }])],
      [
        "hardlink out",
        await makeTar([{ header: { name: "h", type: "link", linkname: "../../../../etc/passwd" } }]),
      ],
      [
        "size header past the data",
        patchFirstSize(await makeTar([{ header: { name: "f", mode: 0o644 }, body: "x" }]), 4096),
      ],
    ];
    for (const [what, layer] of hostile) {
      const image = await ingestLayers(env.content, [base, layer]);
      await assert.rejects(
        env.unpacker.unpack(NS, image, { snapshotter: "overlayfs" }),
        (err: Error) => {
          assert.match(
            err.message,
            /^Cannot unpack layer 2 of 2 \(sha256:[0-9a-f]{64}\) of image sha256:/,
            what,
          );
          assert.equal(errorKind(err), "invalid_argument", `${what}: ${err.message}`);
          return true;
        },
      );
      const infos = await keys(env.snapshotters.get("overlayfs")!);
      assert.deepEqual(infos.map((i) => [i.name, i.kind]), [[
        (await chainIds(image.diffIds))[0],
        "committed",
      ]], what);
      assert.deepEqual([...Deno.readDirSync(outside)], [], what);
    }
    // Absolute names and writes through a symlinked parent are re-rooted inside the snapshot (as
    // containerd's fs.RootPath does): they succeed, and still nothing outside changes.
    const contained = await makeTar([
      { header: { name: "link/escape", mode: 0o644 }, body: "x" },
      { header: { name: `${outside}/absolute`, mode: 0o644 }, body: "y" },
    ]);
    const image = await ingestLayers(env.content, [base, contained]);
    const { chainId: top } = await env.unpacker.unpack(NS, image, { snapshotter: "overlayfs" });
    assert.deepEqual([...Deno.readDirSync(outside)], []);
    await withView(env, "overlayfs", top, async (root) => {
      assert.equal(await Deno.readTextFile(`${root}${outside}/escape`), "x");
      assert.equal(await Deno.readTextFile(`${root}${outside}/absolute`), "y");
    });
    assert.equal(Deno.readTextFileSync("/etc/passwd").startsWith("root:"), true);
  });
});

Deno.test("Unpacker.unpack() rejects a layer whose diff ID differs from the config and a truncated gzip", async () => {
  await withEnv(async (env) => {
    const layer = await makeTar([{ header: { name: "f", mode: 0o644 }, body: "data" }]);
    const wrong = await ingestLayers(env.content, [layer], { diffIds: [`sha256:${"0".repeat(64)}`] });
    await assert.rejects(env.unpacker.unpack(NS, wrong, { snapshotter: "native" }), (err: Error) => {
      assert.equal(errorKind(err), "failed_precondition");
      assert.match(err.message, /diff ID mismatch/);
      return true;
    });
    const gz = gzip(layer);
    const truncated = await ingestLayers(env.content, [layer], { blobs: [gz.subarray(0, gz.length - 20)] });
    await assert.rejects(env.unpacker.unpack(NS, truncated, { snapshotter: "overlayfs" }), (err: Error) => {
      assert.equal(errorKind(err), "invalid_argument");
      assert.match(err.message, /Cannot (decompress|read) layer/);
      return true;
    });
    for (const sn of env.snapshotters.values()) assert.deepEqual(await keys(sn), []);
  });
});

Deno.test("Unpacker.unpack() refuses an unknown snapshotter and a config whose diff_ids do not match the layers", async () => {
  await withEnv(async (env) => {
    const layer = await makeTar([{ header: { name: "f", mode: 0o644 }, body: "data" }]);
    const image = await ingestLayers(env.content, [layer]);
    await assert.rejects(
      env.unpacker.unpack(NS, image, { snapshotter: "zfs" }),
      /snapshotter "zfs" is not loaded/,
    );
    const bad = await ingestLayers(env.content, [layer], { diffIds: [] });
    await assert.rejects(
      env.unpacker.unpack(NS, bad, { snapshotter: "overlayfs" }),
      /1 layers but 0 diff IDs/,
    );
  });
});
