import assert from "node:assert/strict";
import { ContentStore, LocalContentBackend } from "../content/mod.ts";
import { MetadataDB } from "../metadata/db.ts";
import { type Mount, mountAll, unmountAll } from "../mount/mod.ts";
import { NativeSnapshotter, OverlaySnapshotter, type Snapshotter } from "../snapshots/mod.ts";
import { fsSyscalls } from "../../../ffi/fs.ts";
import { applyLayer } from "./apply.ts";
import { diffMounts, LABEL_UNCOMPRESSED } from "./diff_mounts.ts";
import { readonlyMounts } from "../mount/mod.ts";
import { gzip, makeTar, streamOf } from "./test_util.ts";

const NS = "default";
const CAP = new Uint8Array([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

// Layers carry whole seconds, as Go's tar writer does by default.
const secs = (st: Deno.FileInfo) => Math.floor((st.mtime?.getTime() ?? 0) / 1000);

/** Every entry of a tree: type, mode, owner, size/content, link target, xattrs; sorted. */
async function describe(dir: string): Promise<string[]> {
  const sys = fsSyscalls();
  const out: string[] = [];
  const visit = async (rel: string) => {
    for await (const e of Deno.readDir(`${dir}${rel}`)) {
      const p = `${rel}/${e.name}`;
      const full = `${dir}${p}`;
      const st = await Deno.lstat(full);
      const x = st.isSymlink ? "" : sys.llistxattr(full).filter((n) => !n.startsWith("trusted.overlay."))
        .sort().map((n) => `${n}=${[...sys.lgetxattr(full, n) ?? []].join(".")}`).join(",");
      const head = `${p} ${(st.mode! & 0o177777).toString(8)} ${st.uid}:${st.gid} ${x}`;
      if (st.isSymlink) out.push(`${head} -> ${await Deno.readLink(full)}`);
      else if (st.isDirectory) {
        out.push(`${head} mtime=${secs(st)}`);
        await visit(p);
      } else if (st.isFile) {
        out.push(`${head} nlink=${st.nlink} mtime=${secs(st)} ${await Deno.readTextFile(full)}`);
      } else out.push(`${head} rdev=${st.rdev}`);
    }
  };
  await visit("");
  return out.sort();
}

async function mounted<T>(
  work: string,
  mounts: readonly Mount[],
  fn: (root: string) => Promise<T>,
): Promise<T> {
  const root = await Deno.makeTempDir({ dir: work });
  mountAll(mounts, root);
  try {
    return await fn(root);
  } finally {
    unmountAll(root);
    await Deno.remove(root);
  }
}

async function* read(store: ContentStore, digest: string) {
  yield* store.read(NS, digest);
}

for (
  const [name, make] of [
    ["overlayfs", (root: string, db: MetadataDB) => new OverlaySnapshotter(root, db)],
    ["native", (root: string, db: MetadataDB) => new NativeSnapshotter(root, db)],
  ] as const
) {
  Deno.test(`diffMounts() makes a layer that, applied on the parent, reproduces the changed tree (${name})`, async () => {
    const tmp = await Deno.makeTempDir({ prefix: "berth-diffmounts-" });
    const db = new MetadataDB(`${tmp}/meta.db`);
    try {
      const content = new ContentStore(new LocalContentBackend(`${tmp}/content`), db);
      const sn: Snapshotter = make(`${tmp}/sn`, db);
      const base = await makeTar([
        { header: { name: "etc", type: "directory", mode: 0o755 } },
        { header: { name: "etc/keep", mode: 0o644 }, body: "keep" },
        { header: { name: "etc/edit", mode: 0o644 }, body: "before" },
        { header: { name: "etc/gone", mode: 0o644 }, body: "gone" },
        { header: { name: "etc/chmod", mode: 0o644 }, body: "chmod" },
        { header: { name: "dir", type: "directory", mode: 0o755 } },
        { header: { name: "dir/a", mode: 0o644 }, body: "a" },
        { header: { name: "dir/sub", type: "directory", mode: 0o755 } },
        { header: { name: "dir/sub/b", mode: 0o644 }, body: "b" },
        { header: { name: "becomes-dir", mode: 0o644 }, body: "file" },
        { header: { name: "link", type: "symlink", linkname: "etc/keep" } },
      ]);
      await mounted(
        tmp,
        await sn.prepare(NS, "base-active"),
        (root) =>
          applyLayer(streamOf(gzip(base)), root, {
            mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
            whiteouts: "native",
          }),
      );
      await sn.commit(NS, "base", { key: "base-active" });

      const upper = await sn.prepare(NS, "work", { parent: "base" });
      const expected = await mounted(tmp, upper, async (root) => {
        await Deno.writeTextFile(`${root}/etc/edit`, "after, longer");
        await Deno.remove(`${root}/etc/gone`);
        await Deno.chmod(`${root}/etc/chmod`, 0o600);
        await Deno.remove(`${root}/dir`, { recursive: true });
        await Deno.mkdir(`${root}/dir`);
        await Deno.writeTextFile(`${root}/dir/new`, "new");
        await Deno.remove(`${root}/becomes-dir`);
        await Deno.mkdir(`${root}/becomes-dir/x`, { recursive: true });
        await Deno.writeTextFile(`${root}/becomes-dir/x/y`, "y");
        await Deno.remove(`${root}/link`);
        await Deno.symlink("etc/edit", `${root}/link`);
        await Deno.writeTextFile(`${root}/hard1`, "shared");
        await Deno.link(`${root}/hard1`, `${root}/hard2`);
        await Deno.writeTextFile(`${root}/${"long-name-".repeat(12)}`, "long");
        await Deno.writeTextFile(`${root}/cap`, "cap");
        await Deno.chown(`${root}/cap`, 1000, 1000);
        fsSyscalls().lsetxattr(`${root}/cap`, "security.capability", CAP);
        return await describe(root);
      });

      const lower = await sn.view(NS, "lower", { parent: "base" });
      const desc = await diffMounts(lower, upper, { namespace: NS, content, labels: { "test": "yes" } });
      assert.equal(desc.mediaType, "application/vnd.oci.image.layer.v1.tar+gzip");
      const info = await content.info(NS, desc.digest);
      assert.equal(info.size, desc.size);
      assert.equal(info.labels["test"], "yes");
      assert.match(info.labels[LABEL_UNCOMPRESSED] ?? "", /^sha256:[0-9a-f]{64}$/);

      const fresh = await sn.prepare(NS, "fresh", { parent: "base" });
      const applied = await mounted(tmp, fresh, async (root) => {
        const res = await applyLayer(ReadableStream.from(read(content, desc.digest)), root, {
          mediaType: desc.mediaType,
          whiteouts: "native",
        });
        assert.equal(res.diffId, info.labels[LABEL_UNCOMPRESSED]);
        return await describe(root);
      });
      assert.deepEqual(applied, expected);

      // The layer holds only the changes: unchanged files are not in it.
      const listing = await new Deno.Command("tar", {
        args: ["-tzf", (content.backend as LocalContentBackend).blobPath(desc.digest)],
      })
        .output();
      const names = new TextDecoder().decode(listing.stdout).split("\n");
      assert.ok(!names.includes("etc/keep"), names.join(" "));
      assert.ok(names.includes("etc/.wh.gone"), names.join(" "));
      assert.ok(names.includes("dir/.wh.a") || names.includes("dir/.wh..wh..opq"), names.join(" "));
    } finally {
      db.close();
      await Deno.remove(tmp, { recursive: true });
    }
  });
}

Deno.test("diffMounts() writes an uncompressed layer when asked and refuses unknown media types", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "berth-diffmounts-" });
  const db = new MetadataDB(`${tmp}/meta.db`);
  try {
    const content = new ContentStore(new LocalContentBackend(`${tmp}/content`), db);
    await Deno.mkdir(`${tmp}/up`);
    await Deno.writeTextFile(`${tmp}/up/f`, "f");
    const upper: Mount[] = [{ type: "bind", source: `${tmp}/up`, options: ["rbind", "rw"] }];
    const d = await diffMounts([], upper, {
      namespace: NS,
      content,
      mediaType: "application/vnd.oci.image.layer.v1.tar",
    });
    const info = await content.info(NS, d.digest);
    assert.equal(info.labels[LABEL_UNCOMPRESSED], undefined);
    const out = await new Deno.Command("tar", {
      args: ["-tvf", (content.backend as LocalContentBackend).blobPath(d.digest)],
    }).output();
    assert.match(new TextDecoder().decode(out.stdout), /^-rw-r--r-- (root\/root|0\/0)\s+1 .* f\n$/);
    await assert.rejects(
      diffMounts([], upper, { namespace: NS, content, mediaType: "application/x-tar" }),
      /not a supported layer type/,
    );
    assert.deepEqual(await content.listStatuses(NS), []);
  } finally {
    db.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("readonlyMounts() turns an overlay's upper dir into its top lower dir and binds into ro", () => {
  assert.deepEqual(
    readonlyMounts([{
      type: "overlay",
      source: "overlay",
      options: ["workdir=/w", "upperdir=/u", "lowerdir=/l1:/l2"],
    }]),
    [{ type: "overlay", source: "overlay", options: ["lowerdir=/u:/l1:/l2"] }],
  );
  assert.deepEqual(readonlyMounts([{ type: "bind", source: "/s", options: ["rw", "rbind"] }]), [
    { type: "bind", source: "/s", options: ["rbind", "ro"] },
  ]);
});
