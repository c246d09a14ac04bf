/**
 * Debian's real `ctr` against Berth's daemon and a real registry: image pull with client-side unpack
 * (Diff.Apply + Snapshots), every `ctr snapshots` subcommand, Diff.Diff through `ctr snapshots diff`,
 * and hostile layers pushed in an image.
 */
import assert from "node:assert/strict";
import { Command } from "commander";
import { berth, ctr, startDaemon, type TestDaemon } from "./helpers/daemon.ts";
import { addImageMountCommands } from "../src/cli/commands/mount.ts";
import { startRegistry, type TestRegistry } from "./helpers/registry.ts";
import {
  buildFixtureImages,
  type FixtureManifest,
  type FixtureSet,
  MEDIA_TYPE_OCI_CONFIG,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
  type PushedFixture,
  pushFixtures,
} from "./fixtures/images.ts";
import { compress, layerMediaType, sha256, type TarEntry, tarOf } from "./fixtures/layers.ts";
import { chainIds } from "../src/oci/chain_id.ts";
import { unmountAll } from "../src/core/mount/mod.ts";
import { makeTar } from "../src/core/diff/test_util.ts";

interface Stack {
  readonly registry: TestRegistry;
  readonly daemon: TestDaemon;
  readonly set: FixtureSet;
  readonly layered: PushedFixture;
  readonly dir: string;
  run(args: string[]): Promise<string>;
}

async function withStack(fn: (s: Stack) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-snapshots-e2e-" });
  const registry = await startRegistry();
  try {
    const set = await buildFixtureImages(`${dir}/layout`);
    const { layered } = await pushFixtures(registry, set, { names: ["layered"] });
    await using daemon = await startDaemon();
    const run = async (args: string[]) => {
      const r = await ctr(daemon.address, args);
      if (r.code !== 0) throw new Error(`ctr ${args.join(" ")} failed (${r.code}): ${r.stderr}${r.stdout}`);
      return r.stdout;
    };
    await fn({ registry, daemon, set, layered, dir, run });
  } finally {
    await registry.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

async function topChain(m: FixtureManifest): Promise<string> {
  return (await chainIds(m.layers.map((l) => l.diffId))).at(-1)!;
}

async function assertRootfs(root: string, m: FixtureManifest): Promise<void> {
  for (const p of m.rootfs.present) await Deno.lstat(`${root}/${p}`);
  for (const p of m.rootfs.absent) await assert.rejects(Deno.lstat(`${root}/${p}`), Deno.errors.NotFound, p);
  for (const [p, text] of Object.entries(m.rootfs.contents)) {
    assert.equal(await Deno.readTextFile(`${root}/${p}`), text);
  }
  for (const [p, t] of Object.entries(m.rootfs.symlinks)) {
    assert.equal(await Deno.readLink(`${root}/${p}`), t);
  }
  // The opaque directory shows only what the top layer put there.
  assert.deepEqual([...Deno.readDirSync(`${root}/opt/data`)].map((e) => e.name), ["c.txt"]);
}

/**
 * Waits for the collection a lease deletion (ctr's pull, diff) scheduled: a view ctr makes is no GC root (as with
 * containerd), and that collection must not take one while a test mounts it.
 */
async function settleGc(run: (args: string[]) => Promise<string>): Promise<void> {
  await run(["leases", "create", "--id", "settle"]);
  await run(["leases", "rm", "--sync", "settle"]);
}

/** Runs every `mount …` line ctr printed, then `fn`, then unmounts whatever happened. */
async function withPrintedMounts(printed: string, target: string, fn: () => Promise<void>): Promise<void> {
  await Deno.mkdir(target, { recursive: true });
  try {
    for (const line of printed.trim().split("\n")) {
      assert.match(line, /^mount -t \S+ \S+ \S+ -o \S+$/);
      const out = await new Deno.Command("sh", { args: ["-c", line], stderr: "piped" }).output();
      assert.ok(out.success, `${line}: ${new TextDecoder().decode(out.stderr)}`);
    }
    await fn();
  } finally {
    unmountAll(target);
    await Deno.remove(target);
  }
}

for (const snapshotter of ["overlayfs", "native"]) {
  Deno.test(`ctr images pull through Berth unpacks the layered image; a mounted view shows its files (${snapshotter})`, async () => {
    await withStack(async ({ run, layered, dir }) => {
      const m = layered.manifests[0]!;
      const sn = ["--snapshotter", snapshotter];
      const out = await run(["images", "pull", ...sn, "--plain-http", "--print-chainid", layered.reference]);
      const top = await topChain(m);
      assert.match(out, new RegExp(`image chain ID: ${top}`));
      const ls = await run(["snapshots", ...sn, "ls"]);
      for (const c of await chainIds(m.layers.map((l) => l.diffId))) {
        assert.match(ls, new RegExp(`^${c} .*Committed`, "m"));
      }
      assert.doesNotMatch(ls, /extract-/);

      await settleGc(run);
      await run(["snapshots", ...sn, "view", "v1", top]);
      const printed = await run(["snapshots", ...sn, "mounts", `${dir}/mnt`, "v1"]);
      assert.match(printed, snapshotter === "overlayfs" ? /^mount -t overlay overlay / : /^mount -t bind /);
      await withPrintedMounts(printed, `${dir}/mnt`, () => assertRootfs(`${dir}/mnt`, m));
      await run(["snapshots", ...sn, "rm", "v1"]);
      assert.doesNotMatch(await run(["snapshots", ...sn, "ls"]), /^v1 /m);
    });
  });
}

Deno.test("ctr snapshots ls|info|tree|usage|prepare|view|commit|rm|mounts|diff work against Berth", async () => {
  await withStack(async ({ run, layered, dir, daemon }) => {
    const m = layered.manifests[0]!;
    await run(["images", "pull", "--plain-http", layered.reference]);
    await settleGc(run);
    const chain = await chainIds(m.layers.map((l) => l.diffId));
    const top = chain.at(-1)!;

    const tree = await run(["snapshots", "tree"]);
    assert.equal(tree, ` ${chain[0]}\n  \\_ ${chain[1]}\n    \\_ ${chain[2]}\n`);

    const info = JSON.parse(await run(["snapshots", "info", top]));
    assert.equal(info.Name, top);
    assert.equal(info.Parent, chain[1]);
    assert.equal(info.Kind, "Committed");

    const usage = await run(["snapshots", "usage", "-b", chain[0]!]);
    const [, row] = usage.trim().split("\n");
    const [key, size, inodes] = row!.trim().split(/\s+/);
    assert.equal(key, chain[0]);
    assert.ok(Number(size) > 500_000, `busybox layer uses ${size} bytes`);
    assert.ok(Number(inodes) >= 15);

    // prepare → change → commit → a new layer on top of the image.
    await run(["snapshots", "prepare", "work", top]);
    const printed = await run(["snapshots", "mounts", `${dir}/work`, "work"]);
    await withPrintedMounts(printed, `${dir}/work`, async () => {
      await Deno.writeTextFile(`${dir}/work/etc/added.txt`, "added\n");
      await Deno.remove(`${dir}/work/etc/hello.txt`);
    });
    const ls = await run(["snapshots", "ls"]);
    assert.match(ls, new RegExp(`^work +${top} +Active`, "m"));

    // Diff.Diff: the active snapshot against its parent, as a gzip layer on stdout.
    const layerPath = `${dir}/diff.tar.gz`;
    const d = await new Deno.Command("sh", {
      args: ["-c", `ctr --address "$1" snapshots diff work > "$2"`, "sh", daemon.address, layerPath],
      stderr: "piped",
    }).output();
    assert.ok(d.success, new TextDecoder().decode(d.stderr));
    const listing = await new Deno.Command("tar", { args: ["-tzf", layerPath] }).output();
    assert.deepEqual(new TextDecoder().decode(listing.stdout).trim().split("\n").sort(), [
      "etc/",
      "etc/.wh.hello.txt",
      "etc/added.txt",
    ]);

    await run(["snapshots", "commit", "committed-work", "work"]);
    const after = await run(["snapshots", "ls"]);
    assert.match(after, new RegExp(`^committed-work +${top} +Committed`, "m"));
    assert.doesNotMatch(after, /^work /m);
    assert.equal(
      JSON.parse(await run(["snapshots", "info", "committed-work"])).Labels["containerd.io/gc.root"] !==
        undefined,
      true,
    );

    await settleGc(run); // ctr snapshots diff deleted its lease
    await run(["snapshots", "view", "--target", `${dir}/ignored`, "look", "committed-work"]);
    const viewMounts = await run(["snapshots", "mounts", `${dir}/look`, "look"]);
    await withPrintedMounts(viewMounts, `${dir}/look`, async () => {
      assert.equal(await Deno.readTextFile(`${dir}/look/etc/added.txt`), "added\n");
      await assert.rejects(Deno.lstat(`${dir}/look/etc/hello.txt`), Deno.errors.NotFound);
      await assert.rejects(Deno.writeTextFile(`${dir}/look/etc/ro`, "x"), /read-only|Read-only/i);
    });

    const busy = await ctr(daemon.address, ["snapshots", "rm", "committed-work"]);
    assert.notEqual(busy.code, 0);
    assert.match(busy.stderr, /failed to remove "committed-work".*look/);
    await run(["snapshots", "rm", "look", "committed-work"]);
    assert.doesNotMatch(await run(["snapshots", "ls"]), /work|look/);
  });
});

/** Writes an image with the given layer tars into an OCI layout and pushes it with skopeo. */
async function pushImage(
  registry: TestRegistry,
  dir: string,
  name: string,
  layers: Uint8Array[],
): Promise<string> {
  const layout = `${dir}/${name}-layout`;
  await Deno.mkdir(`${layout}/blobs/sha256`, { recursive: true });
  const put = async (data: Uint8Array) => {
    const digest = await sha256(data);
    await Deno.writeFile(`${layout}/blobs/sha256/${digest.slice(7)}`, data);
    return { digest, size: data.length };
  };
  const descs = [];
  for (const raw of layers) {
    descs.push({ mediaType: layerMediaType("gzip"), ...(await put(compress(raw, "gzip"))) });
  }
  const diffIds = await Promise.all(layers.map(sha256));
  const config = {
    mediaType: MEDIA_TYPE_OCI_CONFIG,
    ...(await put(new TextEncoder().encode(JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: diffIds },
    })))),
  };
  const manifest = await put(new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    config,
    layers: descs,
  })));
  await Deno.writeTextFile(`${layout}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await Deno.writeTextFile(
    `${layout}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_INDEX,
      manifests: [{
        mediaType: MEDIA_TYPE_OCI_MANIFEST,
        ...manifest,
        annotations: { "org.opencontainers.image.ref.name": name },
      }],
    }),
  );
  const ref = `${registry.host}/berth/${name}:v1`;
  const out = await new Deno.Command("skopeo", {
    args: [
      "copy",
      "--quiet",
      "--preserve-digests",
      "--dest-tls-verify=false",
      `oci:${layout}:${name}`,
      `docker://${ref}`,
    ],
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return ref;
}

Deno.test("ctr images pull of an image with a hostile layer fails clearly and leaves no snapshot of that chain", async () => {
  await withStack(async ({ run, registry, dir, daemon }) => {
    const marker = `berth-escape-${crypto.randomUUID()}`;
    const base: TarEntry[] = [
      { name: "etc/", type: "directory" },
      { name: "etc/ok", type: "file", content: "ok\n" },
    ];
    const baseTar = await tarOf(base);
    const hostile: [string, Uint8Array, RegExp][] = [
      [
        "dotdot",
        await tarOf([{ name: `../../../../../../tmp/${marker}`, type: "file", content: "x" }]),
        /escapes the root/,
      ],
      [
        "hardlink",
        await makeTar([{ header: { name: "h", type: "link", linkname: "../../../../../etc/passwd" } }]),
        /escapes the root/,
      ],
    ];
    for (const [name, layer, error] of hostile) {
      const ref = await pushImage(registry, dir, name, [baseTar, layer]);
      const r = await ctr(daemon.address, ["images", "pull", "--plain-http", ref]);
      assert.notEqual(r.code, 0, name);
      assert.match(r.stderr, /failed to extract layer sha256:[0-9a-f]{64}/, name);
      assert.match(r.stderr, error, name);
      const chain = await chainIds([await sha256(baseTar), await sha256(layer)]);
      const ls = await run(["snapshots", "ls"]);
      assert.doesNotMatch(ls, new RegExp(chain[1]!), name);
      assert.doesNotMatch(ls, /extract-|Active/, name);
      await assert.rejects(Deno.lstat(`/tmp/${marker}`), Deno.errors.NotFound);
    }
  });
});

Deno.test("berth snapshots prints what ctr snapshots prints, and berth images mount/unmount mounts an image", async () => {
  await withStack(async ({ run, layered, dir, daemon }) => {
    const m = layered.manifests[0]!;
    await run(["images", "pull", "--plain-http", layered.reference]);
    const top = await topChain(m);
    const b = async (args: string[]) => {
      const r = await berth(["--address", daemon.address, "snapshots", ...args]);
      assert.equal(r.code, 0, `berth snapshots ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    const squash = (s: string) => s.split("\n").map((l) => l.trimEnd()).join("\n");
    assert.equal(squash(await b(["ls"])), squash(await run(["snapshots", "ls"])));
    assert.equal(await b(["tree"]), await run(["snapshots", "tree"]));
    assert.equal(squash(await b(["usage", "-b"])), squash(await run(["snapshots", "usage", "-b"])));
    const info = JSON.parse(await b(["info", top]));
    const ctrInfo = JSON.parse(await run(["snapshots", "info", top]));
    assert.deepEqual([info.Kind, info.Name, info.Parent], [ctrInfo.Kind, ctrInfo.Name, ctrInfo.Parent]);

    assert.equal(
      await b(["prepare", "--target", "/mnt/x", "w", top]),
      await run(["snapshots", "mounts", "/mnt/x", "w"]),
    );
    assert.equal(await b(["mounts", "/t", "w"]), await run(["snapshots", "mounts", "/t", "w"]));
    await b(["commit", "c", "w"]);
    assert.match(await run(["snapshots", "ls"]), new RegExp(`^c +${top} +Committed`, "m"));
    await b(["view", "v", "c"]);
    await b(["rm", "v", "c"]);
    assert.doesNotMatch(await run(["snapshots", "ls"]), /^(c|v|w) /m);
    const missing = await berth(["--address", daemon.address, "snapshots", "rm", "nope"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Cannot remove snapshot "nope": .*does not exist/);

    // images mount/unmount, through a stand-in for the images group (wired by the CLI's owner).
    const target = `${dir}/rootfs`;
    await Deno.mkdir(target);
    const images = async (args: string[]) => {
      const program = new Command("berth").option("-a, --address <path>").option(
        "-n, --namespace <ns>",
        "",
        "default",
      )
        .exitOverride();
      addImageMountCommands(program.command("images"));
      for (const c of program.commands) c.exitOverride();
      await program.parseAsync(["--address", daemon.address, "images", ...args], { from: "user" });
    };
    try {
      await images(["mount", layered.reference, target]);
      await assertRootfs(target, m);
      await assert.rejects(Deno.writeTextFile(`${target}/x`, "x"), /read-only/i);
      assert.match(
        await run(["snapshots", "ls"]),
        new RegExp(`^${await Deno.realPath(target)} +${top} +View`, "m"),
      );
      await images(["unmount", target]);
      assert.deepEqual([...Deno.readDirSync(target)], []);
      assert.doesNotMatch(await run(["snapshots", "ls"]), /View/);

      await images(["mount", "--rw", layered.reference, target]);
      await Deno.writeTextFile(`${target}/x`, "x");
      assert.match(await run(["snapshots", "ls"]), /Active/);
    } finally {
      unmountAll(target);
    }
    await images(["unmount", target]);
    assert.doesNotMatch(await run(["snapshots", "ls"]), /Active/);
  });
});
