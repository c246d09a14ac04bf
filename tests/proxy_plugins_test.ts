/**
 * `[proxy_plugins]` snapshotters: the remote is containerd's own contrib/snapshotservice over its native
 * snapshotter (tests/go/src/berthtest/snapshotservice, built offline from Debian's containerd 1.6
 * library). Debian's real `ctr` pulls and runs an image on it through Berth; the remote is killed and
 * restarted under the daemon.
 */
import assert from "node:assert/strict";
import { ctr, startDaemon } from "./helpers/daemon.ts";
import { buildGoProgram, hasGoClient } from "./helpers/go_client.ts";
import { startRegistry } from "./helpers/registry.ts";
import { memoryRemote, startRemote, stopRemote } from "./helpers/proxy_remote.ts";
import { buildFixtureImages, pushFixtures } from "./fixtures/images.ts";
import { parseConfig } from "../src/daemon/config.ts";
import { NativeSnapshotter } from "../src/core/snapshots/mod.ts";
import { ProxySnapshotter } from "../src/core/snapshots/proxy.ts";
import { snapshotterSuite } from "../src/core/snapshots/testsuite.ts";
import { createSnapshotsService } from "../src/services/snapshots.ts";

// The shared conformance suite through the proxy client, in memory: Berth's own Snapshots service over
// a native snapshotter plays the remote (its namespace is not the caller's: keys carry the caller's).
snapshotterSuite("proxy", (root, db) => {
  const native = new NativeSnapshotter(root, db);
  const service = createSnapshotsService(new Map([["native", native]]), { events: { publish() {} } });
  const transport = memoryRemote((r) => service.register(r), () => void native.close());
  return new ProxySnapshotter({ name: "native", address: "memory", transport });
});

const isRoot = Deno.uid() === 0;

Deno.test("parseConfig reads snapshot and content proxy plugins and reports other types", () => {
  const { config, warnings } = parseConfig(`version = 2
[proxy_plugins]
  [proxy_plugins.stargz]
    type = "snapshot"
    address = "/run/stargz.sock"
    platform = "linux/amd64"
  [proxy_plugins.blobs]
    type = "content"
    address = "/run/blobs.sock"
  [proxy_plugins.differ]
    type = "diff"
    address = "/run/differ.sock"
`);
  assert.deepEqual(config.proxyPlugins, {
    stargz: { type: "snapshot", address: "/run/stargz.sock", platform: "linux/amd64" },
    blobs: { type: "content", address: "/run/blobs.sock", platform: "" },
  });
  assert.deepEqual(warnings.map((w) => w.fields.section ?? w.fields.key), ["proxy_plugins.differ"]);
  assert.throws(
    () => parseConfig(`[proxy_plugins.x]\ntype = "snapshot"\n`),
    /\[proxy_plugins\.x\] needs an address/,
  );
});

Deno.test({
  name:
    "A proxy snapshotter (containerd's snapshotservice) serves ctr pull and run, and survives its remote's restart",
  ignore: !hasGoClient || !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const bin = await buildGoProgram("berthtest/snapshotservice");
  const dir = await Deno.makeTempDir({ prefix: "berth-proxy-" });
  const socket = `${dir}/remote.sock`;
  const remoteRoot = `${dir}/remote-root`;
  await using registry = await startRegistry();
  const pushed = await pushFixtures(registry, await buildFixtureImages(`${dir}/layout`), {
    names: ["single"],
  });
  const image = pushed.single.reference;
  let remote = await startRemote(bin, socket, remoteRoot);
  try {
    await using d = await startDaemon({
      config: `version = 2
[plugins."io.containerd.gc.v1.scheduler"]
  startup_delay = "0s"
[proxy_plugins]
  [proxy_plugins.remote]
    type = "snapshot"
    address = "${socket}"
`,
    });
    const run = async (args: string[], address = d.address) => {
      const r = await ctr(address, args);
      assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}${r.stdout}`);
      return r.stdout;
    };
    try {
      const plugins = await run(["plugins", "ls"]);
      assert.match(plugins, /^io\.containerd\.snapshotter\.v1\s+remote\s+\S+\s+ok\s*$/m);

      await run(["images", "pull", "--plain-http", "--snapshotter", "remote", image]);
      const listed = await run(["snapshots", "--snapshotter", "remote", "ls"]);
      assert.match(listed, /sha256:[0-9a-f]{64}\s+Committed/);
      // What Berth lists is what the remote holds, under the namespace as containerd's metadata keeps it.
      const direct = await run(["snapshots", "--snapshotter", "native", "ls"], socket);
      const names = (out: string) => out.trim().split("\n").slice(1).map((l) => l.split(/\s+/)[0]).sort();
      assert.deepEqual(names(direct), names(listed).map((n) => `default/${n}`));

      const out = await run([
        "run",
        "--rm",
        "--snapshotter",
        "remote",
        image,
        "p1",
        "sh",
        "-c",
        "echo hi > /f && cat /f",
      ]);
      assert.equal(out.trim(), "hi");

      // The remote dies: its calls fail naming it and its address; the daemon serves everything else.
      await stopRemote(remote);
      const down = await ctr(d.address, ["snapshots", "--snapshotter", "remote", "ls"]);
      assert.notEqual(down.code, 0);
      // ctr prints the gRPC code Unavailable as errdefs does.
      assert.match(down.stderr, /: unavailable$/m);
      assert.ok(
        down.stderr.includes(`Proxy snapshotter "remote" at ${socket} is unavailable`),
        down.stderr,
      );
      const refused = await ctr(d.address, ["run", "--rm", "--snapshotter", "remote", image, "p2", "true"]);
      assert.notEqual(refused.code, 0);
      assert.ok(refused.stderr.includes(`Proxy snapshotter "remote"`), refused.stderr);
      await run(["version"]);
      assert.match(await run(["plugins", "ls"]), /^io\.containerd\.snapshotter\.v1\s+remote\s+\S+\s+ok\s*$/m);
      await run(["snapshots", "--snapshotter", "native", "ls"]);

      // It comes back on the same socket: calls work again, with what it kept.
      remote = await startRemote(bin, socket, remoteRoot);
      assert.deepEqual(names(await run(["snapshots", "--snapshotter", "remote", "ls"])), names(listed));
      const again = await run([
        "run",
        "--rm",
        "--snapshotter",
        "remote",
        image,
        "p3",
        "sh",
        "-c",
        "echo back",
      ]);
      assert.equal(again.trim(), "back");

      // Garbage collection removes the image's snapshots from the remote once the image is gone.
      await run(["images", "rm", "--sync", image]);
      assert.deepEqual(names(await run(["snapshots", "--snapshotter", "remote", "ls"])), []);
      assert.deepEqual(names(await run(["snapshots", "--snapshotter", "native", "ls"], socket)), []);
    } finally {
      for (const id of ["p1", "p2", "p3"]) {
        await ctr(d.address, ["tasks", "rm", "-f", id]);
        await ctr(d.address, ["containers", "rm", id]);
      }
    }
  } finally {
    await stopRemote(remote);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
