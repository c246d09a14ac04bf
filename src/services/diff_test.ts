import assert from "node:assert/strict";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { type BlobReader, WalkingDiffer } from "../core/diff/mod.ts";
import { gzip, makeTar, sha256 } from "../core/diff/test_util.ts";
import { notFound } from "../base/errors.ts";
import { MetadataDB } from "../core/metadata/db.ts";
import { mountAll, unmountAll } from "../core/mount/mod.ts";
import { OverlaySnapshotter } from "../core/snapshots/mod.ts";
import { Diff } from "../gen/services/diff/v1/diff_pb.ts";
import { createDiffService } from "./diff.ts";
import { errorInterceptor } from "./errors.ts";
import { mountToPb } from "./snapshots.ts";

const H = { headers: { "containerd-namespace": "default" } };
const GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";

class MemoryBlobs implements BlobReader {
  readonly blobs = new Map<string, Uint8Array>();
  add(b: Uint8Array): string {
    const d = sha256(b);
    this.blobs.set(d, b);
    return d;
  }
  read(_ns: string, digest: string): ReadableStream<Uint8Array> {
    const b = this.blobs.get(digest);
    return new ReadableStream({
      start(c) {
        if (!b) return c.error(notFound(`Content ${digest} not found`));
        c.enqueue(b);
        c.close();
      },
    });
  }
}

Deno.test("Diff.Apply unpacks layers into overlay snapshots, whiteouts included", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "berth-diff-svc-" });
  const db = new MetadataDB(`${tmp}/meta.db`);
  try {
    const blobs = new MemoryBlobs();
    const sn = new OverlaySnapshotter(`${tmp}/overlay`, db);
    const svc = createDiffService(new WalkingDiffer(blobs, { tempDir: tmp }));
    const client = createClient(
      Diff,
      createRouterTransport((r) => svc.register(r), { router: { interceptors: [errorInterceptor] } }),
    );

    const l1 = await makeTar([
      { header: { name: "etc", type: "directory", mode: 0o755 } },
      { header: { name: "etc/os-release", mode: 0o644 }, body: "berth" },
      { header: { name: "etc/old", mode: 0o644 }, body: "old" },
    ]);
    const l2 = await makeTar([{ header: { name: "etc/.wh.old", mode: 0o644 } }]);
    let parent = "";
    for (const [i, layer] of [l1, l2].entries()) {
      const blob = gzip(layer);
      const mounts = await sn.prepare("default", `extract-${i}`, { parent });
      const res = await client.apply({
        diff: { mediaType: GZIP, digest: blobs.add(blob), size: BigInt(blob.length) },
        mounts: mounts.map(mountToPb),
      }, H);
      assert.equal(res.applied?.digest, sha256(layer));
      assert.equal(res.applied?.mediaType, "application/vnd.oci.image.layer.v1.tar");
      assert.equal(res.applied?.size, BigInt(layer.length));
      await sn.commit("default", `layer-${i}`, { key: `extract-${i}` });
      parent = `layer-${i}`;
    }
    const dir = `${tmp}/view`;
    await Deno.mkdir(dir);
    mountAll(await sn.view("default", "v", { parent }), dir);
    try {
      assert.equal(await Deno.readTextFile(`${dir}/etc/os-release`), "berth");
      await assert.rejects(Deno.lstat(`${dir}/etc/old`), Deno.errors.NotFound);
    } finally {
      unmountAll(dir);
    }

    const mounts = (await sn.prepare("default", "x", { parent })).map(mountToPb);
    await assert.rejects(
      client.apply({ diff: { mediaType: GZIP, digest: `sha256:${"1".repeat(64)}` }, mounts }, H),
      (e: unknown) => e instanceof ConnectError && e.code === Code.NotFound,
    );
    await assert.rejects(
      client.apply({ diff: { mediaType: "text/plain", digest: blobs.add(gzip(l1)) }, mounts }, H),
      (e: unknown) =>
        e instanceof ConnectError && e.code === Code.InvalidArgument && /text\/plain/.test(e.message),
    );
    await assert.rejects(
      client.diff({}, H),
      (e: unknown) => e instanceof ConnectError && e.code === Code.Unimplemented,
    );
    // Every temp mount point was unmounted and removed.
    assert.deepEqual(
      [...Deno.readDirSync(tmp)].map((e) => e.name).filter((n) => n.startsWith("berth-mount-")),
      [],
    );
  } finally {
    db.close();
    await Deno.remove(tmp, { recursive: true });
  }
});
