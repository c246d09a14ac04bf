/**
 * Encrypted images (issue 17) against an independent implementation: Debian's skopeo (containers/image
 * with ocicrypt, Go) encrypts and decrypts, a real registry holds the images, a real daemon pulls,
 * unpacks and runs them through runc.
 */
import assert from "node:assert/strict";
import { berth, startDaemon, type TestDaemon } from "./helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "./helpers/registry.ts";
import { buildFixtureImages, type FixtureSet, pushFixtures } from "./fixtures/images.ts";

const ENC_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
const KEYS_JWE = "org.opencontainers.image.enc.keys.jwe";

async function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", stdin: "null" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function ok(
  p: Promise<{ code: number; stdout: string; stderr: string }>,
  what: string,
): Promise<string> {
  const r = await p;
  assert.equal(r.code, 0, `${what} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** An RSA key pair (openssl genrsa: PKCS#1 private key, as imgcrypt's README makes them). */
async function rsaKeys(dir: string, name: string): Promise<{ priv: string; pub: string }> {
  const priv = `${dir}/${name}.pem`;
  const pub = `${dir}/${name}.pub.pem`;
  await ok(run("openssl", ["genrsa", "-traditional", "-out", priv, "2048"]), "openssl genrsa");
  await ok(run("openssl", ["rsa", "-in", priv, "-pubout", "-out", pub]), "openssl rsa -pubout");
  return { priv, pub };
}

interface LayoutImage {
  manifest: {
    config: { digest: string };
    layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
  };
  manifestDigest: string;
}

const sha256 = async (b: Uint8Array) =>
  `sha256:${
    Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>))).map((x) =>
      x.toString(16).padStart(2, "0")
    ).join("")
  }`;
const blobPath = (dir: string, digest: string) => `${dir}/blobs/sha256/${digest.slice(7)}`;

async function readLayout(dir: string): Promise<LayoutImage> {
  const index = JSON.parse(await Deno.readTextFile(`${dir}/index.json`));
  const manifestDigest = index.manifests[0].digest;
  return { manifest: JSON.parse(await Deno.readTextFile(blobPath(dir, manifestDigest))), manifestDigest };
}

/** Rewrites the one image of an OCI layout: `edit` changes its manifest (and may add blobs). */
async function rewriteLayout(
  dir: string,
  edit: (m: LayoutImage["manifest"]) => Promise<void>,
): Promise<void> {
  const index = JSON.parse(await Deno.readTextFile(`${dir}/index.json`));
  const { manifest } = await readLayout(dir);
  await edit(manifest);
  const bytes = new TextEncoder().encode(JSON.stringify(manifest));
  const digest = await sha256(bytes);
  await Deno.writeFile(blobPath(dir, digest), bytes);
  index.manifests[0] = { ...index.manifests[0], digest, size: bytes.length };
  await Deno.writeTextFile(`${dir}/index.json`, JSON.stringify(index));
}

interface Env extends AsyncDisposable {
  dir: string;
  set: FixtureSet;
  registry: TestRegistry;
  keys: { priv: string; pub: string };
  wrong: { priv: string; pub: string };
  /** Encrypts fixture `name` with skopeo for `keys.pub`, into an OCI layout under dir. */
  skopeoEncrypt(name: string, layout: string): Promise<void>;
  push(layout: string, ref: string): Promise<void>;
}

async function setup(): Promise<Env> {
  const dir = await Deno.makeTempDir({ prefix: "berth-imgcrypt-" });
  const registry = await startRegistry();
  try {
    const set = await buildFixtureImages(`${dir}/fixtures`);
    const keys = await rsaKeys(dir, "key");
    const wrong = await rsaKeys(dir, "wrong");
    return {
      dir,
      set,
      registry,
      keys,
      wrong,
      async skopeoEncrypt(name, layout) {
        await ok(
          run("skopeo", [
            "copy",
            "--quiet",
            "--encryption-key",
            `jwe:${keys.pub}`,
            `oci:${set.dir}:${name}`,
            `oci:${layout}:${name}`,
          ]),
          "skopeo copy --encryption-key",
        );
      },
      async push(layout, ref) {
        const index = JSON.parse(await Deno.readTextFile(`${layout}/index.json`));
        const tag = index.manifests[0].annotations["org.opencontainers.image.ref.name"];
        await ok(
          run("skopeo", [
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            `oci:${layout}:${tag}`,
            `docker://${ref}`,
          ]),
          "skopeo push",
        );
      },
      async [Symbol.asyncDispose]() {
        await registry.stop();
        await Deno.remove(dir, { recursive: true });
      },
    };
  } catch (err) {
    await registry.stop();
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
}

function cli(daemon: TestDaemon) {
  return (args: string[]) => berth(["--address", daemon.address, ...args]);
}

async function snapshots(daemon: TestDaemon): Promise<string[]> {
  const r = await cli(daemon)(["snapshots", "ls"]);
  return r.stdout.split("\n").slice(1).map((l) => l.split(/\s+/)[0]!).filter(Boolean);
}

/** Removes every image and snapshot, so the next pull unpacks every layer again. */
async function reset(daemon: TestDaemon): Promise<void> {
  const b = cli(daemon);
  const names = (await b(["images", "ls", "-q"])).stdout.split("\n").filter(Boolean);
  for (const n of names) await ok(b(["images", "rm", "--sync", n]), "images rm");
  for (const s of (await snapshots(daemon)).reverse()) await ok(b(["snapshots", "rm", s]), "snapshots rm");
  assert.deepEqual(await snapshots(daemon), []);
}

async function cleanup(daemon: TestDaemon): Promise<void> {
  const b = cli(daemon);
  const ids = (r: { stdout: string }) => r.stdout.split("\n").map((l) => l.trim()).filter(Boolean);
  for (const id of ids(await b(["tasks", "ls", "-q"]))) await b(["tasks", "rm", "-f", id]);
  for (const id of ids(await b(["c", "ls", "-q"]))) await b(["c", "rm", id]);
}

Deno.test({
  name:
    "An image encrypted by skopeo is pulled and run with the private key, refused without it or with a wrong, tampered or incomplete one, and nothing is committed",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using env = await setup();
    const layout = `${env.dir}/enc`;
    await env.skopeoEncrypt("layered", layout);
    const { manifest } = await readLayout(layout);
    assert.ok(manifest.layers.every((l) => l.mediaType === ENC_GZIP && l.annotations?.[KEYS_JWE]));
    const ref = `${env.registry.host}/enc/layered:v1`;
    await env.push(layout, ref);
    // The key folder of the daemon's ctd-decoder stream processor, empty until a step fills it.
    const keyDir = `${env.dir}/keys.d`;
    await Deno.mkdir(keyDir);
    const config = `version = 2
[plugins."io.containerd.gc.v1.scheduler"]
  startup_delay = "0s"
[stream_processors]
  [stream_processors."io.containerd.ocicrypt.decoder.v1.tar.gzip"]
    accepts = ["${ENC_GZIP}"]
    returns = "application/vnd.oci.image.layer.v1.tar+gzip"
    path = "/usr/local/bin/ctd-decoder"
    args = ["--decryption-keys-path", "${keyDir}"]
`;
    await using daemon = await startDaemon({ config });
    const b = cli(daemon);
    try {
      await t.step("without a key: refused, naming the missing key, no snapshot, no image", async () => {
        const r = await b(["ctr", "run", "--rm", "--plain-http", ref, "c1", "/bin/cat", "/etc/hello.txt"]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /missing private key needed for decryption/);
        assert.deepEqual(await snapshots(daemon), []);
        assert.equal((await b(["images", "ls", "-q"])).stdout.trim(), "");
      });

      await t.step("with a wrong key: refused, naming the key that does not fit", async () => {
        const r = await b(["ctr", "run", "--rm", "--plain-http", "--key", env.wrong.priv, ref, "c1", "true"]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, new RegExp(`none of the private keys \\(key 1 of the request\\) can unwrap`));
        assert.deepEqual(await snapshots(daemon), []);
      });

      await t.step("with the private key: pulled, decrypted, unpacked and run", async () => {
        const out = await ok(
          b([
            "ctr",
            "run",
            "--rm",
            "--plain-http",
            "--key",
            env.keys.priv,
            ref,
            "c2",
            "/bin/cat",
            "/etc/hello.txt",
          ]),
          "ctr run --key",
        );
        assert.equal(out, "hello from layer 2\n");
        assert.equal((await snapshots(daemon)).length, 3);
      });

      await t.step("berth run (the Docker form) pulls a missing image with --key and runs it", async () => {
        await reset(daemon);
        const dataRoot = `${env.dir}/docker-data`;
        const out = await ok(
          b([
            "--data-root",
            dataRoot,
            "run",
            "--rm",
            "--network",
            "none",
            "--plain-http",
            "--key",
            env.keys.priv,
            ref,
            "/bin/cat",
            "/etc/hello.txt",
          ]),
          "berth run --key",
        );
        assert.equal(out, "hello from layer 2\n");
        assert.equal((await snapshots(daemon)).length, 3);
        assert.deepEqual((await b(["containers", "ls", "-q"])).stdout.trim(), "", "--rm left a container");
      });

      await t.step(
        "the key under the stream processor's --decryption-keys-path serves a pull too",
        async () => {
          await ok(b(["images", "rm", "--sync", ref]), "images rm");
          for (const s of (await snapshots(daemon)).reverse()) await b(["snapshots", "rm", s]);
          await Deno.copyFile(env.keys.priv, `${keyDir}/key.pem`);
          await ok(b(["images", "pull", "--plain-http", ref]), "images pull with the configured key");
          assert.equal((await snapshots(daemon)).length, 3);
          await Deno.remove(`${keyDir}/key.pem`);
        },
      );

      await t.step("a tampered layer fails its HMAC check, naming it, and leaves no snapshot", async () => {
        const bad = `${env.dir}/tampered`;
        await env.skopeoEncrypt("single", bad);
        await rewriteLayout(bad, async (m) => {
          const layer = m.layers[0]!;
          const data = await Deno.readFile(blobPath(bad, layer.digest));
          data[data.length >> 1]! ^= 0x40;
          layer.digest = await sha256(data);
          await Deno.writeFile(blobPath(bad, layer.digest), data);
        });
        const badRef = `${env.registry.host}/enc/tampered:v1`;
        await env.push(bad, badRef);
        // Its base layer is the layered image's: without this, its committed chain is (rightly) reused.
        await reset(daemon);
        const before = await snapshots(daemon);
        const r = await b(["images", "pull", "--plain-http", "--key", env.keys.priv, badRef]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /HMAC mismatch/);
        assert.deepEqual(await snapshots(daemon), before);
      });

      await t.step("a layer without its keys annotation is refused, naming the annotation", async () => {
        const bare = `${env.dir}/bare`;
        await env.skopeoEncrypt("single", bare);
        await rewriteLayout(bare, (m) => {
          delete m.layers[0]!.annotations![KEYS_JWE];
          return Promise.resolve();
        });
        const bareRef = `${env.registry.host}/enc/bare:v1`;
        await env.push(bare, bareRef);
        const before = await snapshots(daemon);
        const r = await b(["images", "pull", "--plain-http", "--key", env.keys.priv, bareRef]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /has no org\.opencontainers\.image\.enc\.keys\.jwe annotation/);
        assert.deepEqual(await snapshots(daemon), before);
      });
    } finally {
      await cleanup(daemon);
    }
  },
});

Deno.test({
  name:
    "An image encrypted by berth images encrypt and pushed is decrypted by skopeo into the original layers",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using env = await setup();
    const pushed = await pushFixtures(env.registry, env.set, { names: ["layered"] });
    const original = pushed.layered.manifests[0]!;
    await using daemon = await startDaemon();
    const b = cli(daemon);
    const src = pushed.layered.reference;
    const dst = `${env.registry.host}/enc/berth-layered:v1`;
    await ok(b(["images", "pull", "--plain-http", src]), "images pull");
    await ok(b(["images", "encrypt", "--recipient", `jwe:${env.keys.pub}`, src, dst]), "images encrypt");
    await ok(b(["images", "push", "--plain-http", dst]), "images push");

    const raw = JSON.parse(
      await ok(
        run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${dst}`]),
        "skopeo inspect",
      ),
    );
    assert.ok(raw.layers.every((l: { mediaType: string }) => l.mediaType === ENC_GZIP));

    const out = `${env.dir}/decrypted`;
    await ok(
      run("skopeo", [
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--decryption-key",
        env.keys.priv,
        `docker://${dst}`,
        `oci:${out}:x`,
      ]),
      "skopeo copy --decryption-key",
    );
    const { manifest } = await readLayout(out);
    assert.deepEqual(manifest.layers.map((l) => l.digest), original.layers.map((l) => l.digest));
    const cfg = JSON.parse(await Deno.readTextFile(blobPath(out, manifest.config.digest)));
    assert.deepEqual(cfg.rootfs.diff_ids, original.layers.map((l) => l.diffId));

    // skopeo without the key refuses it, as Berth does.
    const refused = await run("skopeo", [
      "copy",
      "--quiet",
      "--src-tls-verify=false",
      "--decryption-key",
      env.wrong.priv,
      `docker://${dst}`,
      `oci:${env.dir}/refused:x`,
    ]);
    assert.notEqual(refused.code, 0);

    // And berth images decrypt gives the original layers back too.
    await ok(b(["images", "decrypt", "--key", env.keys.priv, dst, "plain:v1"]), "images decrypt");
    const { image } = await daemon.client().images.get({ name: "plain:v1" });
    const m = JSON.parse(
      new TextDecoder().decode(
        (await Array.fromAsync(daemon.client().content.read({ digest: image!.target!.digest }))).map((r) =>
          r.data
        )
          .reduce((a, c) => new Uint8Array([...a, ...c]), new Uint8Array()),
      ),
    );
    assert.deepEqual(m.layers.map((l: { digest: string }) => l.digest), original.layers.map((l) => l.digest));
  },
});
