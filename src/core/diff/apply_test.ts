import assert from "node:assert/strict";
import { errorKind } from "../../base/errors.ts";
import { type FsSyscalls, fsSyscalls } from "../../../ffi/fs.ts";
import { applyLayer, rehearseApply, removeStaleRehearsals } from "./apply.ts";
import {
  concat,
  gzip,
  makeTar,
  patchFirstSize,
  rawPaxHeader,
  sha256,
  streamOf,
  type TarEntry,
  zstd,
} from "./test_util.ts";

const OCI_TAR = "application/vnd.oci.image.layer.v1.tar";
const OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd";
const DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const sys = fsSyscalls();
const mtime = new Date("2020-01-02T03:04:05Z");

/** A temp folder with root/ to unpack into and outside/ that must never change. */
async function withDirs(fn: (root: string, outside: string, tmp: string) => Promise<void>) {
  const tmp = await Deno.makeTempDir({ prefix: "berth-apply-" });
  try {
    await Deno.mkdir(`${tmp}/root`);
    await Deno.mkdir(`${tmp}/outside`);
    await Deno.writeTextFile(`${tmp}/outside/sentinel`, "untouched");
    await fn(`${tmp}/root`, `${tmp}/outside`, tmp);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

function listTree(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${dir}${rel}`)) {
    out.push(`${rel}/${e.name}`);
    if (e.isDirectory) out.push(...listTree(dir, `${rel}/${e.name}`));
  }
  return out.sort();
}

async function assertRejectsKind(p: Promise<unknown>, kind: string, re: RegExp) {
  await assert.rejects(p, (err: unknown) => {
    assert.equal(errorKind(err), kind, String(err));
    assert.match((err as Error).message, re);
    return true;
  });
}

const caps = new Uint8Array([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

const richLayer: TarEntry[] = [
  { header: { name: "etc", type: "directory", mode: 0o755, mtime } },
  { header: { name: "etc/passwd", mode: 0o644, uid: 0, gid: 0, mtime }, body: "root:x:0:0\n" },
  {
    header: {
      name: "bin/ping",
      mode: 0o4755,
      uid: 0,
      gid: 0,
      mtime,
      pax: {
        "SCHILY.xattr.user.note": "hello",
        "SCHILY.xattr.security.capability": String.fromCharCode(...caps),
      },
    },
    body: "ELF",
  },
  { header: { name: "tmp", type: "directory", mode: 0o1777, mtime } },
  { header: { name: "home/user", type: "directory", mode: 0o750, uid: 1000, gid: 1001, mtime } },
  { header: { name: "home/user/file", mode: 0o2640, uid: 1000, gid: 1001, mtime }, body: "x".repeat(70000) },
  { header: { name: "etc/link", type: "symlink", linkname: "passwd", uid: 5, gid: 6, mtime } },
  { header: { name: "etc/hard", type: "link", linkname: "etc/passwd", mtime } },
  { header: { name: "dev/null", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666, mtime } },
  { header: { name: "dev/sda", type: "block-device", devmajor: 8, devminor: 0, mode: 0o660, mtime } },
  { header: { name: "run/fifo", type: "fifo", mode: 0o600, mtime } },
];

Deno.test("applyLayer() writes files, dirs, links, devices, fifos, ownership, modes, xattrs and mtimes", async () => {
  await withDirs(async (root) => {
    const tarBytes = await makeTar(richLayer);
    const res = await applyLayer(streamOf(gzip(tarBytes)), root, {
      mediaType: OCI_GZIP,
      whiteouts: "overlay",
    });
    assert.equal(res.diffId, sha256(tarBytes));
    assert.equal(res.size, tarBytes.length);

    assert.equal(await Deno.readTextFile(`${root}/etc/passwd`), "root:x:0:0\n");
    const ping = await Deno.lstat(`${root}/bin/ping`);
    assert.equal(ping.mode! & 0o7777, 0o4755);
    assert.equal(new TextDecoder().decode(sys.lgetxattr(`${root}/bin/ping`, "user.note")), "hello");
    assert.deepEqual(sys.lgetxattr(`${root}/bin/ping`, "security.capability"), caps);
    assert.equal((await Deno.lstat(`${root}/tmp`)).mode! & 0o7777, 0o1777);
    const home = await Deno.lstat(`${root}/home/user`);
    assert.deepEqual([home.uid, home.gid, home.mode! & 0o7777], [1000, 1001, 0o750]);
    assert.equal(home.mtime?.getTime(), mtime.getTime());
    assert.equal((await Deno.lstat(`${root}/etc`)).mtime?.getTime(), mtime.getTime());
    const file = await Deno.lstat(`${root}/home/user/file`);
    assert.deepEqual([file.uid, file.gid, file.mode! & 0o7777, file.size], [1000, 1001, 0o2640, 70000]);
    assert.equal(file.mtime?.getTime(), mtime.getTime());
    const link = await Deno.lstat(`${root}/etc/link`);
    assert.ok(link.isSymlink);
    assert.deepEqual([link.uid, link.gid], [5, 6]);
    assert.equal(await Deno.readLink(`${root}/etc/link`), "passwd");
    assert.equal((await Deno.lstat(`${root}/etc/hard`)).ino, (await Deno.lstat(`${root}/etc/passwd`)).ino);
    const dev = await Deno.lstat(`${root}/dev/null`);
    assert.ok(dev.isCharDevice);
    assert.equal(dev.rdev, (1 << 8) | 3);
    assert.ok((await Deno.lstat(`${root}/dev/sda`)).isBlockDevice);
    assert.ok((await Deno.lstat(`${root}/run/fifo`)).isFifo);
  });
});

Deno.test("applyLayer() gives the same diff ID for uncompressed, gzip and zstd layers", async () => {
  const tarBytes = await makeTar([{ header: { name: "a", mtime }, body: "a".repeat(100000) }]);
  for (
    const [mediaType, blob] of [[OCI_TAR, tarBytes], [OCI_ZSTD, zstd(tarBytes)], [
      DOCKER_GZIP,
      gzip(tarBytes),
    ]] as const
  ) {
    await withDirs(async (root) => {
      const res = await applyLayer(streamOf(blob), root, {
        mediaType,
        whiteouts: "native",
        expectedDiffId: sha256(tarBytes),
      });
      assert.equal(res.diffId, sha256(tarBytes), mediaType);
      assert.equal((await Deno.stat(`${root}/a`)).size, 100000);
    });
  }
});

Deno.test("applyLayer() rejects an unknown media type before reading", async () => {
  await withDirs(async (root) => {
    await assertRejectsKind(
      applyLayer(streamOf(new Uint8Array(10)), root, {
        mediaType: "application/vnd.oci.image.config.v1+json",
        whiteouts: "overlay",
      }),
      "invalid_argument",
      /media type "application\/vnd\.oci\.image\.config\.v1\+json"/,
    );
  });
});

Deno.test("applyLayer() turns whiteouts into overlay char devices and opaque xattrs", async () => {
  await withDirs(async (root) => {
    const tarBytes = await makeTar([
      { header: { name: "dir", type: "directory", mode: 0o755 } },
      { header: { name: "dir/.wh..wh..opq", mode: 0o644 } },
      { header: { name: ".wh.gone", mode: 0o644 } },
      { header: { name: "dir/.wh..wh.plnk", mode: 0o644 } },
    ]);
    await applyLayer(streamOf(tarBytes), root, { mediaType: OCI_TAR, whiteouts: "overlay" });
    const wh = await Deno.lstat(`${root}/gone`);
    assert.ok(wh.isCharDevice);
    assert.equal(wh.rdev, 0);
    assert.equal(new TextDecoder().decode(sys.lgetxattr(`${root}/dir`, "trusted.overlay.opaque")), "y");
    assert.deepEqual(listTree(root), ["/dir", "/gone"]);
  });
});

Deno.test("applyLayer() with native whiteouts deletes paths and empties opaque dirs of lower content", async () => {
  await withDirs(async (root) => {
    const lower = await makeTar([
      { header: { name: "a/x", mode: 0o644 }, body: "x" },
      { header: { name: "a/sub/y", mode: 0o644 }, body: "y" },
      { header: { name: "b", mode: 0o644 }, body: "b" },
      { header: { name: "c/keep", mode: 0o644 }, body: "k" },
    ]);
    await applyLayer(streamOf(lower), root, { mediaType: OCI_TAR, whiteouts: "native" });
    const upper = await makeTar([
      { header: { name: "a/new", mode: 0o644 }, body: "n" },
      { header: { name: "a/.wh..wh..opq", mode: 0o644 } },
      { header: { name: ".wh.b", mode: 0o644 } },
    ]);
    await applyLayer(streamOf(upper), root, { mediaType: OCI_TAR, whiteouts: "native" });
    assert.deepEqual(listTree(root), ["/a", "/a/new", "/c", "/c/keep"]);
  });
});

Deno.test("applyLayer() replaces a lower symlink instead of writing through it", async () => {
  await withDirs(async (root, outside) => {
    await Deno.symlink(`${outside}/sentinel`, `${root}/f`);
    const t = await makeTar([{ header: { name: "f", mode: 0o644 }, body: "new" }]);
    await applyLayer(streamOf(t), root, { mediaType: OCI_TAR, whiteouts: "overlay" });
    assert.equal(await Deno.readTextFile(`${outside}/sentinel`), "untouched");
    assert.equal(await Deno.readTextFile(`${root}/f`), "new");
  });
});

// Hostile layers: each fails clearly (or is confined to the root) and changes nothing outside it.
Deno.test("applyLayer() refuses an entry whose ../ path climbs out of the root", async () => {
  await withDirs(async (root, outside, tmp) => {
    const before = listTree(tmp);
    const t = await makeTar([{ header: { name: "a/../../outside/evil", mode: 0o644 }, body: "evil" }]);
    await assertRejectsKind(
      applyLayer(streamOf(t), root, { mediaType: OCI_TAR, whiteouts: "overlay" }),
      "invalid_argument",
      /"a\/\.\.\/\.\.\/outside\/evil" escapes the root/,
    );
    assert.deepEqual(listTree(tmp), before);
    assert.equal(await Deno.readTextFile(`${outside}/sentinel`), "untouched");
  });
});

Deno.test("applyLayer() re-roots absolute entry paths inside the root", async () => {
  await withDirs(async (root, _outside, tmp) => {
    const t = await makeTar([{ header: { name: `${tmp}/outside/sentinel`, mode: 0o644 }, body: "evil" }]);
    await applyLayer(streamOf(t), root, { mediaType: OCI_TAR, whiteouts: "overlay" });
    assert.equal(await Deno.readTextFile(`${tmp}/outside/sentinel`), "untouched");
    assert.equal(await Deno.readTextFile(`${root}${tmp}/outside/sentinel`), "evil");
  });
});

Deno.test("applyLayer() resolves symlinked parent dirs inside the root", async () => {
  await withDirs(async (root, outside, tmp) => {
    const t = await makeTar([
      { header: { name: "abs", type: "symlink", linkname: outside } },
      { header: { name: "rel", type: "symlink", linkname: "../../../../../../.." } },
      { header: { name: "abs/evil", mode: 0o644 }, body: "evil" },
      { header: { name: "rel/evil2", mode: 0o644 }, body: "evil" },
      { header: { name: ".wh.sentinel", mode: 0o644 } },
      { header: { name: "abs/.wh.sentinel", mode: 0o644 } },
    ]);
    await applyLayer(streamOf(t), root, { mediaType: OCI_TAR, whiteouts: "native" });
    assert.deepEqual(listTree(outside), ["/sentinel"]);
    assert.equal(await Deno.readTextFile(`${outside}/sentinel`), "untouched");
    assert.equal(await Deno.readTextFile(`${root}${outside}/evil`), "evil");
    assert.equal(await Deno.readTextFile(`${root}/evil2`), "evil");
    assert.ok(listTree(tmp).every((p) => p.startsWith("/root") || p.startsWith("/outside")));
  });
});

Deno.test("applyLayer() refuses a hard link to a file outside the root", async () => {
  await withDirs(async (root, outside) => {
    const up = await makeTar([{ header: { name: "h", type: "link", linkname: "../outside/sentinel" } }]);
    await assertRejectsKind(
      applyLayer(streamOf(up), root, { mediaType: OCI_TAR, whiteouts: "overlay" }),
      "invalid_argument",
      /Hard link target of "h" .* escapes the root/,
    );
    const abs = await makeTar([{ header: { name: "h", type: "link", linkname: `${outside}/sentinel` } }]);
    await assertRejectsKind(
      applyLayer(streamOf(abs), root, { mediaType: OCI_TAR, whiteouts: "overlay" }),
      "invalid_argument",
      /does not exist/,
    );
    assert.equal((await Deno.stat(`${outside}/sentinel`)).nlink, 1);
    assert.deepEqual(listTree(root), []);
  });
});

Deno.test("applyLayer() fails clearly on a truncated gzip stream", async () => {
  await withDirs(async (root, _o, tmp) => {
    const before = listTree(tmp).filter((p) => !p.startsWith("/root"));
    const blob = gzip(await makeTar([{ header: { name: "a", mode: 0o644 }, body: "a".repeat(50000) }]));
    await assertRejectsKind(
      applyLayer(streamOf(blob.slice(0, blob.length - 30)), root, {
        mediaType: OCI_GZIP,
        whiteouts: "overlay",
      }),
      "invalid_argument",
      /^Cannot decompress layer \(gzip\): /,
    );
    assert.deepEqual(listTree(tmp).filter((p) => !p.startsWith("/root")), before);
  });
});

Deno.test("applyLayer() fails clearly when a size header is larger than the data", async () => {
  await withDirs(async (root) => {
    const t = patchFirstSize(
      await makeTar([{ header: { name: "a", mode: 0o644 }, body: "0123456789" }]),
      100000,
    );
    await assertRejectsKind(
      applyLayer(streamOf(t), root, { mediaType: OCI_TAR, whiteouts: "overlay" }),
      "invalid_argument",
      /^Cannot read layer tar: /,
    );
  });
});

Deno.test("applyLayer() reports a diff ID mismatch naming both digests", async () => {
  await withDirs(async (root) => {
    const t = await makeTar([{ header: { name: "a", mode: 0o644 }, body: "a" }]);
    const wrong = `sha256:${"0".repeat(64)}`;
    await assertRejectsKind(
      applyLayer(streamOf(gzip(t)), root, {
        mediaType: OCI_GZIP,
        whiteouts: "overlay",
        expectedDiffId: wrong,
      }),
      "failed_precondition",
      new RegExp(`expected ${wrong}, got ${sha256(t)}`),
    );
  });
});

Deno.test("applyLayer() stops when its signal is aborted", async () => {
  await withDirs(async (root) => {
    const t = await makeTar([{ header: { name: "a", mode: 0o644 }, body: "a" }]);
    const ac = new AbortController();
    ac.abort(new DOMException("stop", "AbortError"));
    await assert.rejects(
      applyLayer(streamOf(t), root, { mediaType: OCI_TAR, whiteouts: "overlay", signal: ac.signal }),
      /stop/,
    );
  });
});

Deno.test("applyLayer() sets binary xattrs (security.capability) byte for byte", async () => {
  await withDirs(async (root) => {
    // CAP_SETUID and CAP_NET_RAW: bytes above 0x7f, which a UTF-8 round trip would mangle.
    const binCaps = new Uint8Array([1, 0, 0, 2, 0x80, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]);
    const t = concat(
      await makeTar([{ header: { name: "before", mode: 0o644 }, body: "b" }]).then((b) => b.slice(0, 1024)),
      await rawPaxHeader([["SCHILY.xattr.security.capability", binCaps], [
        "SCHILY.xattr.user.bin",
        new Uint8Array([0xc3, 0x28, 0]),
      ]]),
      await makeTar([
        { header: { name: "bin/tool", mode: 0o755 }, body: "x".repeat(600) },
        { header: { name: "after", mode: 0o644, pax: { "SCHILY.xattr.user.s": "plain" } }, body: "a" },
      ]),
    );
    await applyLayer(streamOf(t, 333), root, { mediaType: OCI_TAR, whiteouts: "overlay" });
    assert.deepEqual(sys.lgetxattr(`${root}/bin/tool`, "security.capability"), binCaps);
    assert.deepEqual(sys.lgetxattr(`${root}/bin/tool`, "user.bin"), new Uint8Array([0xc3, 0x28, 0]));
    assert.equal(sys.lgetxattr(`${root}/before`, "user.bin"), undefined);
    assert.equal(new TextDecoder().decode(sys.lgetxattr(`${root}/after`, "user.s")), "plain");
    assert.deepEqual(sys.llistxattr(`${root}/after`), ["user.s"]);
  });
});

Deno.test("applyLayer() rejects with the failing call's error while data is still flowing, without hanging", async () => {
  await withDirs(async (root) => {
    const failing: FsSyscalls = {
      mknod: (...a) => sys.mknod(...a),
      lchown: (...a) => sys.lchown(...a),
      lgetxattr: (...a) => sys.lgetxattr(...a),
      llistxattr: (...a) => sys.llistxattr(...a),
      lutimes: (...a) => sys.lutimes(...a),
      lsetxattr: () => {
        throw new Error("injected EIO");
      },
    };
    const t = await makeTar([
      { header: { name: "a", mode: 0o644, pax: { "SCHILY.xattr.user.x": "1" } }, body: "x".repeat(600) },
      { header: { name: "b", mode: 0o644 }, body: "y".repeat(200000) },
    ]);
    await assertRejectsKind(
      applyLayer(streamOf(t, 1000), root, { mediaType: OCI_TAR, whiteouts: "overlay", syscalls: failing }),
      "internal",
      /^Cannot unpack layer entry "a": injected EIO$/,
    );
  });
});

Deno.test("rehearseApply applies a layer in its scratch folder and leaves nothing of it behind", async () => {
  await withDirs(async (_root, outside, tmp) => {
    // A rehearsal folder a daemon killed mid-rehearsal left, with content: removed at start-up.
    await Deno.mkdir(`${tmp}/apply-rehearsal-old/r`, { recursive: true });
    await Deno.writeTextFile(`${tmp}/apply-rehearsal-old/r/f`, "left");
    assert.equal(removeStaleRehearsals(tmp), 1);
    assert.equal(removeStaleRehearsals(`${tmp}/none`), 0, "a scratch folder not made yet has none");
    // Throws when the rehearsal layer does not apply.
    await rehearseApply(tmp);
    assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name).sort(), ["outside", "root"]);
    assert.equal(await Deno.readTextFile(`${outside}/sentinel`), "untouched");
  });
});
