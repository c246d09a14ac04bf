/**
 * Garbage collection against Debian's ctr: what containerd 1.6's default scheduler frees after a
 * delete, Berth frees too, and what is in use stays.
 */
import assert from "node:assert/strict";
import { ctr, startDaemon, type TestDaemon } from "./helpers/daemon.ts";
import { startRegistry } from "./helpers/registry.ts";
import { buildFixtureImages, type PushedFixture, pushFixtures } from "./fixtures/images.ts";
import { chainIds } from "../src/oci/chain_id.ts";

async function ingest(address: string, ref: string, text: string): Promise<string> {
  const child = new Deno.Command("ctr", {
    args: ["--address", address, "content", "ingest", ref],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await child.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const bytes = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return "sha256:" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("A sync lease delete collects unreferenced content and keeps content labelled gc.root", async () => {
  // The helper's default config turns the start-up collection off: it would race the ingests.
  await using d = await startDaemon();
  const loose = await ingest(d.address, "loose", "nobody refers to me");
  const kept = await ingest(d.address, "kept", "a root");
  const label = await ctr(d.address, [
    "content",
    "label",
    kept,
    "containerd.io/gc.root=2026-11-27T00:00:00Z",
  ]);
  assert.equal(label.code, 0, label.stderr);
  assert.ok((await ctr(d.address, ["content", "ls", "-q"])).stdout.includes(loose));

  assert.equal((await ctr(d.address, ["leases", "create", "--id", "trigger"])).code, 0);
  const rm = await ctr(d.address, ["leases", "rm", "--sync", "trigger"]);
  assert.equal(rm.code, 0, rm.stderr);

  const ls = (await ctr(d.address, ["content", "ls", "-q"])).stdout;
  assert.ok(!ls.includes(loose), `collected:\n${ls}`);
  assert.ok(ls.includes(kept), `kept:\n${ls}`);
  assert.equal(
    await Deno.stat(`${d.root}/io.containerd.content.v1.content/blobs/sha256/${loose.slice(7)}`).then(
      () => true,
      () => false,
    ),
    false,
  );
});

/** A registry serving the layered fixture, for the length of `fn`. */
async function withLayeredImage(fn: (image: PushedFixture) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-gc-e2e-" });
  const registry = await startRegistry();
  try {
    const set = await buildFixtureImages(`${dir}/layout`);
    const { layered } = await pushFixtures(registry, set, { names: ["layered"] });
    await fn(layered);
  } finally {
    await registry.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

async function run(d: TestDaemon, args: string[]): Promise<string> {
  const r = await ctr(d.address, args);
  assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Polls `check` until it holds, for at most 10 s (containerd 1.6 takes about a second). */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Not within 10 s: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const sn = ["--snapshotter", "native"];

Deno.test("ctr images rm, without --sync, frees the image's blobs and snapshots within seconds", async () => {
  await withLayeredImage(async (image) => {
    await using d = await startDaemon();
    await run(d, ["images", "pull", ...sn, "--plain-http", image.reference]);
    const m = image.manifests[0]!;
    const digests = [image.descriptor.digest, m.config.digest, ...m.layers.map((l) => l.digest)];
    const chains = await chainIds(m.layers.map((l) => l.diffId));
    const content = () => run(d, ["content", "ls", "-q"]);
    const snapshots = () => run(d, ["snapshots", ...sn, "ls"]);
    for (const digest of digests) assert.ok((await content()).includes(digest), digest);
    for (const chain of chains) assert.ok((await snapshots()).includes(chain), chain);

    await run(d, ["images", "rm", image.reference]);
    await eventually("the image's blobs are gone", async () => {
      const ls = await content();
      return digests.every((digest) => !ls.includes(digest));
    });
    await eventually("the image's snapshots are gone", async () => {
      const ls = await snapshots();
      return chains.every((chain) => !ls.includes(chain));
    });
    for (const digest of digests) {
      const blob = `${d.root}/io.containerd.content.v1.content/blobs/sha256/${
        digest.slice("sha256:".length)
      }`;
      assert.equal(await Deno.lstat(blob).then(() => true, () => false), false, blob);
    }
    assert.deepEqual([...Deno.readDirSync(`${d.root}/io.containerd.snapshotter.v1.native/snapshots`)], []);
  });
});

Deno.test("A collection after ctr images rm keeps a container's snapshot and its chain until the container goes", async () => {
  await withLayeredImage(async (image) => {
    await using d = await startDaemon();
    await run(d, ["images", "pull", ...sn, "--plain-http", image.reference]);
    await run(d, ["containers", "create", ...sn, image.reference, "keeper"]);
    const m = image.manifests[0]!;
    const chains = await chainIds(m.layers.map((l) => l.diffId));
    const snapshots = () => run(d, ["snapshots", ...sn, "ls"]);

    await run(d, ["images", "rm", image.reference]);
    // The image's manifest going shows that a collection ran.
    await eventually("the manifest is collected", async () => {
      return !(await run(d, ["content", "ls", "-q"])).includes(image.descriptor.digest);
    });
    const ls = await snapshots();
    assert.match(ls, /^keeper\s+\S+\s+Active/m);
    for (const chain of chains) assert.match(ls, new RegExp(`^${chain}\\s.*Committed`, "m"));
    assert.equal((await run(d, ["containers", "ls", "-q"])).trim(), "keeper");

    // ctr removes the container and its snapshot; the chain under it is garbage now.
    await run(d, ["containers", "rm", "keeper"]);
    await eventually(
      "the container's chain is collected",
      async () => (await snapshots()).trim().split("\n").length === 1,
    );
  });
});

Deno.test("ctr images rm --sync returns once the image's blobs and snapshots are collected", async () => {
  await withLayeredImage(async (image) => {
    // With a 2 s schedule_delay nothing is collected at once: the call must wait for the collection.
    await using d = await startDaemon({
      config: 'version = 2\n[plugins."io.containerd.gc.v1.scheduler"]\n  startup_delay = "0s"\n' +
        '  schedule_delay = "2s"\n',
    });
    await run(d, ["images", "pull", ...sn, "--plain-http", image.reference]);
    const m = image.manifests[0]!;
    await run(d, ["images", "rm", "--sync", image.reference]);
    const ls = await run(d, ["content", "ls", "-q"]);
    for (const digest of [image.descriptor.digest, m.config.digest, ...m.layers.map((l) => l.digest)]) {
      assert.ok(!ls.includes(digest), `${digest} still there right after --sync`);
    }
    assert.equal((await run(d, ["snapshots", ...sn, "ls"])).trim().split("\n").length, 1, "only the header");
  });
});

Deno.test("An active snapshot no container, lease or gc.root keeps is collected, as containerd does within seconds", async () => {
  await withLayeredImage(async (image) => {
    await using d = await startDaemon();
    await run(d, ["images", "pull", ...sn, "--plain-http", image.reference]);
    const snapshots = () => run(d, ["snapshots", ...sn, "ls"]);
    // ctr prepares with a gc.root label: kept across collections.
    await run(d, [
      "snapshots",
      ...sn,
      "prepare",
      "kept",
      (await chainIds(image.manifests[0]!.layers.map((l) => l.diffId))).at(-1)!,
    ]);
    // The snapshot is prepared under ctr's lease, then the container id is refused.
    const bad = await ctr(d.address, ["run", "-d", ...sn, image.reference, "bad/id", "sleep", "1"]);
    assert.notEqual(bad.code, 0, bad.stdout);
    await eventually(
      "the refused container's snapshot is collected",
      async () => !(await snapshots()).includes("bad/id"),
    );
    assert.match(await snapshots(), /^kept\s+\S+\s+Active/m);
    assert.equal((await run(d, ["images", "ls", "-q"])).trim(), image.reference);
  });
});
