/**
 * `[proxy_plugins]` content stores: the remote is containerd's own content/local store served by its
 * services/content/contentserver (tests/go/src/berthtest/contentservice, built offline from Debian's
 * containerd 1.6 library). Debian's real `ctr` pulls, runs, lists and removes an image whose blobs live
 * in the remote through Berth; the remote is killed and restarted under the daemon.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ContentStore } from "../src/core/content/mod.ts";
import { RemoteContentBackend } from "../src/core/content/remote.ts";
import { contentStoreSuite } from "../src/core/content/testsuite.ts";
import { MetadataDB } from "../src/core/metadata/db.ts";
import { createContentService } from "../src/services/content.ts";
import { parseConfig } from "../src/daemon/config.ts";
import { ctr, startDaemon } from "./helpers/daemon.ts";
import { buildGoProgram, hasGoClient } from "./helpers/go_client.ts";
import { memoryRemote, startRemote, stopRemote } from "./helpers/proxy_remote.ts";
import { startRegistry } from "./helpers/registry.ts";
import { buildFixtureImages, pushFixtures } from "./fixtures/images.ts";

// The shared conformance suite through the remote backend, in memory: Berth's own Content service over
// a local store with a database of its own plays the remote.
contentStoreSuite("remote", (root, db, options) => {
  const remoteDb = new MetadataDB(join(root, "..", "remote.db"));
  const remote = new ContentStore(join(root, "..", "remote"), remoteDb);
  const service = createContentService(remote, { events: { publish() {} } });
  const transport = memoryRemote((r) => service.register(r), () => remoteDb.close());
  const backend = new RemoteContentBackend({
    name: "memory",
    address: "memory",
    transport,
  });
  return new ContentStore(backend, db, options);
});

Deno.test("parseConfig refuses two content proxies, naming both, and keeps the content plugin a proxy needs", () => {
  const two = `version = 2
[proxy_plugins.a]
  type = "content"
  address = "/run/a.sock"
[proxy_plugins.b]
  type = "content"
  address = "/run/b.sock"
`;
  assert.throws(
    () => parseConfig(two, "c.toml"),
    /Invalid config c\.toml: 2 content proxy plugins are configured \("a", "b"\)/,
  );
  // containerd 1.6 configs disable the local content plugin so that its metadata plugin takes the proxy.
  const { config, warnings } = parseConfig(`version = 2
disabled_plugins = ["io.containerd.content.v1.content", "io.containerd.snapshotter.v1.btrfs"]
[proxy_plugins.a]
  type = "content"
  address = "/run/a.sock"
`);
  assert.deepEqual(config.disabledPlugins, ["io.containerd.snapshotter.v1.btrfs"]);
  assert.deepEqual(warnings.map((w) => w.fields.plugin), ["io.containerd.content.v1.content"]);
});

const isRoot = Deno.uid() === 0;

/** The files of a content store folder laid out as containerd's (`<root>/blobs/sha256/<hex>`), as digests. */
async function blobFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(`${root}/blobs/sha256`)) out.push(`sha256:${e.name}`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

Deno.test({
  name:
    "A proxy content store (containerd's contentserver) holds what ctr pulls and runs, is collected, and survives its remote's restart",
  ignore: !hasGoClient || !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const bin = await buildGoProgram("berthtest/contentservice");
  const dir = await Deno.makeTempDir({ prefix: "berth-content-proxy-" });
  const socket = `${dir}/remote.sock`;
  const remoteRoot = `${dir}/remote-root`;
  await using registry = await startRegistry();
  const pushed = await pushFixtures(registry, await buildFixtureImages(`${dir}/layout`), {
    names: ["single", "layered"],
  });
  const single = pushed.single.reference;
  const layered = pushed.layered.reference;
  let remote = await startRemote(bin, socket, remoteRoot);
  try {
    await using d = await startDaemon({
      config: `version = 2
[plugins."io.containerd.gc.v1.scheduler"]
  startup_delay = "0s"
[proxy_plugins]
  [proxy_plugins.remote]
    type = "content"
    address = "${socket}"
`,
    });
    const run = async (args: string[]) => {
      const r = await ctr(d.address, args);
      assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}${r.stdout}`);
      return r.stdout;
    };
    const listed = async () =>
      (await run(["content", "ls", "-q"])).trim().split("\n").filter((l) => l !== "").sort();
    const localRoot = `${d.root}/io.containerd.content.v1.content`;
    try {
      assert.match(await run(["plugins", "ls"]), /^io\.containerd\.content\.v1\s+remote\s+\S+\s+ok\s*$/m);
      const detail = await run(["plugins", "ls", "-d", "id==remote"]);
      assert.ok(detail.includes(socket), detail);

      await run(["images", "pull", "--plain-http", single]);
      const blobs = await listed();
      assert.ok(blobs.length >= 3, blobs.join(" ")); // manifest, config, layer
      // The bytes are the remote's, under containerd's layout; Berth's own folder holds none.
      assert.deepEqual(await blobFiles(remoteRoot), blobs);
      assert.deepEqual(await blobFiles(localRoot), []);

      const out = await run(["run", "--rm", single, "c1", "sh", "-c", "echo hi"]);
      assert.equal(out.trim(), "hi");

      // The remote dies: reading content and pulling fail naming it and its socket; the rest is served.
      await stopRemote(remote);
      const named = `Proxy content store "remote" at ${socket} is unavailable`;
      const get = await ctr(d.address, ["content", "get", blobs[0]!]);
      assert.notEqual(get.code, 0);
      assert.ok(get.stderr.includes(named), get.stderr);
      const pull = await ctr(d.address, ["images", "pull", "--plain-http", layered]);
      assert.notEqual(pull.code, 0);
      assert.ok(pull.stderr.includes(named), pull.stderr);
      await run(["version"]);
      // What namespaces hold is Berth's own record, listed without the remote (containerd's too).
      assert.deepEqual(await listed(), blobs);

      // It comes back on the same socket: pulls work again.
      remote = await startRemote(bin, socket, remoteRoot);
      await run(["images", "pull", "--plain-http", layered]);
      assert.deepEqual(await blobFiles(remoteRoot), await listed());
      assert.deepEqual(await blobFiles(localRoot), []);

      // Garbage collection removes the images' blobs from the remote once the images are gone.
      await run(["images", "rm", "--sync", single, layered]);
      assert.deepEqual(await listed(), []);
      assert.deepEqual(await blobFiles(remoteRoot), []);
    } finally {
      await ctr(d.address, ["tasks", "rm", "-f", "c1"]);
      await ctr(d.address, ["containers", "rm", "c1"]);
    }
  } finally {
    await stopRemote(remote);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
