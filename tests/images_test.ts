/**
 * `berth images pull` end to end: a real docker-registry (open, basic auth, behind a hosts.toml mirror
 * or a misbehaving proxy), a real daemon, and Debian's ctr reading what Berth stored.
 */

import assert from "node:assert/strict";
import { berth, ctr, startDaemon, type TestDaemon } from "./helpers/daemon.ts";
import { startRegistry, type StartRegistryOptions, type TestRegistry } from "./helpers/registry.ts";
import { buildFixtureImages, type FixtureSet, type PushedFixture, pushFixtures } from "./fixtures/images.ts";
import type { FixtureName } from "./fixtures/images.ts";
import { startProxy } from "./images_proxy.ts";

let fixtures: Promise<FixtureSet> | undefined;
function fixtureSet(): Promise<FixtureSet> {
  fixtures ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "berth-images-test-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    return await buildFixtureImages(dir);
  })();
  return fixtures;
}

interface Env extends AsyncDisposable {
  registry: TestRegistry;
  daemon: TestDaemon;
  pushed: Record<FixtureName, PushedFixture>;
  berth(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  labels(digest: string): Promise<Record<string, string>>;
  has(digest: string): Promise<boolean>;
}

async function setup(
  options: { registry?: StartRegistryOptions; names?: FixtureName[]; config?: string } = {},
): Promise<Env> {
  const set = await fixtureSet();
  const registry = await startRegistry(options.registry);
  let daemon: TestDaemon | undefined;
  try {
    const pushed = await pushFixtures(registry, set, {
      names: options.names ?? ["single", "layered", "multi"],
    });
    daemon = await startDaemon({ config: options.config });
    const d = daemon;
    return {
      registry,
      daemon: d,
      pushed,
      berth: (args) => berth(["--address", d.address, ...args]),
      async labels(digest) {
        const { info } = await d.client().content.info({ digest });
        return info?.labels ?? {};
      },
      async has(digest) {
        try {
          await d.client().content.info({ digest });
          return true;
        } catch {
          return false;
        }
      },
      async [Symbol.asyncDispose]() {
        await d[Symbol.asyncDispose]();
        await registry.stop();
      },
    };
  } catch (err) {
    await daemon?.[Symbol.asyncDispose]();
    await registry.stop();
    throw err;
  }
}

function ok(r: { code: number; stdout: string; stderr: string }, what: string): string {
  assert.equal(r.code, 0, `${what} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

Deno.test("berth images pull stores every blob with containerd's gc and source labels and records the image", async () => {
  await using env = await setup();
  const img = env.pushed.layered;
  const out = ok(await env.berth(["images", "pull", "--plain-http", "--skip-unpack", img.reference]), "pull");
  const m = img.manifests[0]!;
  for (const l of m.layers) assert.match(out, new RegExp(`layer-${l.digest}: done`));
  const labels = await env.labels(img.descriptor.digest);
  assert.equal(labels["containerd.io/gc.ref.content.config"], m.config.digest);
  m.layers.forEach((l, i) => assert.equal(labels[`containerd.io/gc.ref.content.l.${i}`], l.digest));
  assert.equal(labels["containerd.io/distribution.source.127.0.0.1"], "berth/layered");
  assert.equal(
    (await env.labels(m.layers[0]!.digest))["containerd.io/distribution.source.127.0.0.1"],
    "berth/layered",
  );
  // Debian's ctr sees the same content and image through Berth's services.
  const ctrContent = await ctr(env.daemon.address, ["content", "ls"]);
  assert.match(ctrContent.stdout, new RegExp(`${m.layers[2]!.digest}.*distribution\\.source`));
  const ctrImages = await ctr(env.daemon.address, ["images", "ls", "-q"]);
  assert.equal(ctrImages.stdout.trim(), img.reference);
  // Pulling again finds everything in place.
  const again = ok(
    await env.berth(["images", "pull", "--plain-http", "--skip-unpack", img.reference]),
    "second pull",
  );
  assert.match(again, new RegExp(`layer-${m.layers[0]!.digest}: exists`));
});

Deno.test("berth images pull picks the host platform from an index, and --platform linux/arm64 the arm64 manifest", async () => {
  await using env = await setup({ names: ["multi"] });
  const img = env.pushed.multi;
  const [amd64, arm64] = img.manifests;
  ok(await env.berth(["images", "pull", "--plain-http", "--skip-unpack", img.reference]), "pull");
  assert.ok(await env.has(amd64!.layers[0]!.digest));
  assert.ok(
    !(await env.has(arm64!.layers[0]!.digest)),
    "the arm64 layer must not be pulled for an amd64 host",
  );
  const index = await env.labels(img.descriptor.digest);
  // containerd labels the index with every manifest it lists, pulled or not.
  assert.equal(index["containerd.io/gc.ref.content.m.0"], amd64!.descriptor.digest);
  assert.equal(index["containerd.io/gc.ref.content.m.1"], arm64!.descriptor.digest);

  ok(
    await env.berth([
      "images",
      "pull",
      "--plain-http",
      "--skip-unpack",
      "--platform",
      "linux/arm64",
      img.reference,
    ]),
    "arm64 pull",
  );
  assert.ok(await env.has(arm64!.layers[0]!.digest));
  assert.ok(await env.has(arm64!.config.digest));
  const ls = ok(await env.berth(["images", "ls"]), "ls");
  assert.match(ls, /REF\s+TYPE\s+DIGEST\s+SIZE\s+PLATFORMS\s+LABELS/);
  assert.match(ls, /linux\/amd64,linux\/arm64/);
});

Deno.test("berth images pull with --user authenticates to a registry that requires basic auth", async () => {
  const auth = { username: "berth", password: "s3cret-pass" };
  await using env = await setup({ registry: { auth }, names: ["single"] });
  const ref = env.pushed.single.reference;
  const denied = await env.berth(["images", "pull", "--plain-http", "--skip-unpack", ref]);
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /401|unauthorized|authentication/i);
  ok(
    await env.berth(["images", "pull", "--plain-http", "--skip-unpack", "--user", "berth:s3cret-pass", ref]),
    "pull",
  );
  assert.ok(await env.has(env.pushed.single.manifests[0]!.layers[0]!.digest));
});

Deno.test("berth images pull goes through a hosts.toml mirror and falls back to the upstream when it is down", async () => {
  await using env = await setup({ names: ["single"] });
  await using upstream = await startRegistry();
  const dir = await Deno.makeTempDir({ prefix: "berth-hosts-" });
  try {
    // The image is only on the mirror: the pull can only succeed through it.
    const ref = `${upstream.host}/${env.pushed.single.repository}:v1`;
    await Deno.mkdir(`${dir}/${upstream.host}`);
    await Deno.writeTextFile(
      `${dir}/${upstream.host}/hosts.toml`,
      `server = "http://${upstream.host}"\n[host."http://${env.registry.host}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    ok(await env.berth(["images", "pull", "--skip-unpack", "--hosts-dir", dir, ref]), "pull via mirror");
    assert.ok(await env.has(env.pushed.single.descriptor.digest));

    // A dead mirror: the upstream (which now has the image) serves it.
    const set = await fixtureSet();
    const up = await pushFixtures(upstream, set, { names: ["layered"] });
    const deadPort = 1; // nothing listens on 127.0.0.1:1
    await Deno.writeTextFile(
      `${dir}/${upstream.host}/hosts.toml`,
      `server = "http://${upstream.host}"\n[host."http://127.0.0.1:${deadPort}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    ok(
      await env.berth(["images", "pull", "--skip-unpack", "--hosts-dir", dir, up.layered.reference]),
      "fallback",
    );
    assert.ok(await env.has(up.layered.manifests[0]!.layers[2]!.digest));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("berth images pull fails naming the digest of a corrupted blob and commits nothing", async () => {
  await using env = await setup({ names: ["layered"] });
  await using proxy = startProxy(env.registry.host);
  const img = env.pushed.layered;
  const bad = img.manifests[0]!.layers[1]!.digest;
  proxy.behaviour = { corrupt: bad };
  const ref = `${proxy.host}/${img.repository}:v1`;
  const r = await env.berth(["images", "pull", "--plain-http", "--skip-unpack", ref]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`content ${bad}.*failed verification`));
  assert.ok(!(await env.has(bad)));
  const { statuses } = await env.daemon.client().content.listStatuses({});
  assert.deepEqual(statuses.map((s) => s.ref).filter((s) => s.includes(bad)), []);
  const { images } = await env.daemon.client().images.list({});
  assert.equal(images.length, 0);
});

Deno.test("berth images pull resumes a layer download that the registry cut off", async () => {
  await using env = await setup({ names: ["single"] });
  await using proxy = startProxy(env.registry.host);
  const img = env.pushed.single;
  const layer = img.manifests[0]!.layers[0]!;
  proxy.behaviour = { cut: { digest: layer.digest, after: 300_000 } };
  const ref = `${proxy.host}/${img.repository}:v1`;
  const first = await env.berth(["images", "pull", "--plain-http", "--skip-unpack", ref]);
  assert.notEqual(first.code, 0, "the cut pull must fail");
  assert.match(first.stderr, new RegExp(`${layer.digest}.*resume`));
  const { status } = await env.daemon.client().content.status({ ref: `layer-${layer.digest}` });
  const kept = Number(status!.offset);
  assert.ok(kept > 0 && kept <= 300_000, `ingest kept ${kept} bytes`);

  proxy.behaviour = {};
  const second = ok(
    await env.berth(["images", "pull", "--plain-http", "--skip-unpack", ref]),
    "resumed pull",
  );
  assert.match(second, new RegExp(`layer-${layer.digest}: downloading \\(resuming at`));
  assert.deepEqual(proxy.ranges.get(layer.digest)?.at(-1), `bytes=${kept}-`);
  assert.ok(await env.has(layer.digest));
  const { statuses } = await env.daemon.client().content.listStatuses({});
  assert.equal(statuses.length, 0);
});

Deno.test("berth images pull resumes after the daemon was killed in the middle of a layer", async () => {
  const set = await fixtureSet();
  await using registry = await startRegistry();
  const pushed = await pushFixtures(registry, set, { names: ["single"] });
  await using proxy = startProxy(registry.host);
  const layer = pushed.single.manifests[0]!.layers[0]!;
  proxy.behaviour = { stall: { digest: layer.digest, after: 400_000 } };
  const dir = await Deno.makeTempDir({ prefix: "berth-killed-" });
  try {
    const ref = `${proxy.host}/${pushed.single.repository}:v1`;
    let daemon = await startDaemon({ dir });
    const pulling = berth([
      "--address",
      daemon.address,
      "images",
      "pull",
      "--plain-http",
      "--skip-unpack",
      ref,
    ]);
    const client = daemon.client();
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { statuses } = await client.content.listStatuses({});
      if (statuses.some((s) => s.ref === `layer-${layer.digest}` && s.offset > 0n)) break;
      assert.ok(Date.now() < deadline, "the layer download never started");
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 200));
    await daemon.stop("SIGKILL");
    assert.notEqual((await pulling).code, 0);

    proxy.behaviour = {};
    daemon = await startDaemon({ dir });
    try {
      const { status } = await daemon.client().content.status({ ref: `layer-${layer.digest}` });
      const kept = Number(status!.offset);
      assert.ok(kept > 0 && kept <= 400_000, `ingest kept ${kept} bytes`);
      const out = ok(
        await berth(["--address", daemon.address, "images", "pull", "--plain-http", "--skip-unpack", ref]),
        "pull after restart",
      );
      assert.match(out, new RegExp(`layer-${layer.digest}: downloading \\(resuming at`));
      assert.equal(proxy.ranges.get(layer.digest)?.at(-1), `bytes=${kept}-`);
      await daemon.client().content.info({ digest: layer.digest });
    } finally {
      await daemon.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("berth images pull refuses a malformed manifest and a schema 1 manifest with a clear error", async () => {
  await using env = await setup({ names: ["single"] });
  await using proxy = startProxy(env.registry.host);
  const ref = `${proxy.host}/${env.pushed.single.repository}:broken`;
  proxy.behaviour = {
    manifest: {
      tag: "broken",
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      body: JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: {},
      }),
    },
  };
  const r = await env.berth(["images", "pull", "--plain-http", "--skip-unpack", ref]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Manifest sha256:[a-f0-9]{64} .*is malformed: config has no mediaType/);

  proxy.behaviour = {
    manifest: {
      tag: "broken",
      mediaType: "application/vnd.docker.distribution.manifest.v1+prettyjws",
      body: JSON.stringify({ schemaVersion: 1, name: "x", tag: "broken", fsLayers: [] }),
    },
  };
  const s1 = await env.berth(["images", "pull", "--plain-http", "--skip-unpack", ref]);
  assert.notEqual(s1.code, 0);
  assert.match(s1.stderr, /schema 1 manifests are not supported/);
});

Deno.test("berth images pull unpacks into the snapshotter and images check reports it", async () => {
  await using env = await setup({ names: ["layered"] });
  const img = env.pushed.layered;
  const out = ok(
    await env.berth(["images", "pull", "--plain-http", "--snapshotter", "native", img.reference]),
    "pull",
  );
  assert.match(out, /unpacked linux\/amd64/);
  const check = ok(await env.berth(["images", "check", "--snapshotter", "native"]), "check");
  assert.match(check, /REF\s+TYPE\s+DIGEST\s+STATUS\s+SIZE\s+UNPACKED/);
  assert.match(check, new RegExp(`${img.reference}\\s.*complete \\(5/5\\).*true`));
});
