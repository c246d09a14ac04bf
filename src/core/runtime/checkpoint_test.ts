import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { ContentStore } from "../content/mod.ts";
import { digestOf } from "../../oci/digest_of.ts";
import { BerthError, type ErrorKind } from "../../base/errors.ts";
import { LeaseManager } from "../leases/mod.ts";
import { MetadataDB } from "../metadata/db.ts";
import { CheckpointOptionsSchema, OptionsSchema } from "../../gen/types/runc/options/oci_pb.ts";
import {
  checkpointImagePath,
  checkpointTask,
  checkRestoreSource,
  MEDIA_TYPE_CHECKPOINT,
  MEDIA_TYPE_CHECKPOINT_CONFIG,
  restoreImagePath,
  unpackCheckpoint,
  writeCheckpointBlob,
} from "./checkpoint.ts";
import type { ShimTask } from "./task.ts";

const NS = "ckpt";

interface Fixture {
  dir: string;
  content: ContentStore;
  leases: LeaseManager;
}

async function withStore(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-checkpoint-" });
  const db = new MetadataDB(`${dir}/meta.db`);
  try {
    await fn({ dir, content: new ContentStore(`${dir}/content`, db), leases: new LeaseManager(db) });
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejectsWith(p: Promise<unknown>, kind: ErrorKind, re: RegExp): Promise<void> {
  const err = await p.then(() => undefined, (e) => e);
  assert.ok(err instanceof BerthError, `expected a BerthError(${kind}), got ${err}`);
  assert.equal(err.kind, kind, err.message);
  assert.match(err.message, re);
}

async function readAll(content: ContentStore, digest: string): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of content.read(NS, digest)) parts.push(c);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) out.set(p, (off += p.length) - p.length);
  return out;
}

/** Files shaped like a CRIU image folder: binary .img files, a JSON file, a nested folder. */
async function fakeImageFolder(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>([
    ["inventory.img", new Uint8Array([0x54, 0x4f, 0x1c, 0x58, 1, 2, 3])],
    ["pages-1.img", Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7919) & 0xff)],
    ["descriptors.json", new TextEncoder().encode('["pipe:[1]","pipe:[2]","pipe:[3]"]')],
    ["sub/extra.img", new Uint8Array([9, 9, 9])],
  ]);
  await Deno.mkdir(`${dir}/sub`, { recursive: true });
  for (const [name, data] of files) await Deno.writeFile(`${dir}/${name}`, data, { mode: 0o600 });
  return files;
}

/** A stand-in for a task: `onCheckpoint` plays the shim (runc and CRIU are not involved). */
function shimTask(onCheckpoint: (path: string) => Promise<void>): { task: ShimTask; paths: string[] } {
  const paths: string[] = [];
  const task = {
    namespace: NS,
    id: "c1",
    checkpoint: async (path: string) => {
      paths.push(path);
      await onCheckpoint(path);
    },
  } as unknown as ShimTask;
  return { task, paths };
}

Deno.test("checkpoint media types are containerd's", () => {
  assert.equal(MEDIA_TYPE_CHECKPOINT, "application/vnd.containerd.container.criu.checkpoint.criu.tar");
  assert.equal(
    MEDIA_TYPE_CHECKPOINT_CONFIG,
    "application/vnd.containerd.container.checkpoint.config.v1+proto",
  );
});

Deno.test("writeCheckpointBlob() and unpackCheckpoint() round-trip a CRIU image folder through the content store", async () => {
  await withStore(async ({ dir, content }) => {
    const files = await fakeImageFolder(`${dir}/image`);
    await Deno.mkdir(`${dir}/empty`);
    const { writeDiff } = await import("../diff/mod.ts");
    const desc = await writeCheckpointBlob({ content }, NS, {
      ref: "ck-1",
      mediaType: MEDIA_TYPE_CHECKPOINT,
      data: writeDiff(`${dir}/empty`, `${dir}/image`),
    });
    assert.equal(desc.mediaType, MEDIA_TYPE_CHECKPOINT);
    const bytes = await readAll(content, desc.digest);
    assert.equal(desc.size, bytes.length);
    assert.equal(desc.digest, digestOf(bytes));
    assert.deepEqual(await content.listStatuses(NS), [], "no ingest is left");

    await checkRestoreSource(content, NS, desc);
    await Deno.mkdir(`${dir}/restored`);
    await unpackCheckpoint(content, NS, { digest: desc.digest, dir: `${dir}/restored` });
    for (const [name, data] of files) {
      assert.deepEqual(await Deno.readFile(`${dir}/restored/${name}`), data, name);
      assert.equal((await Deno.stat(`${dir}/restored/${name}`)).mode! & 0o777, 0o600, name);
    }
  });
});

Deno.test("writeCheckpointBlob() adds the blob to the request's lease and accepts content already present", async () => {
  await withStore(async ({ content, leases }) => {
    const lease = await leases.create(NS, { id: "l1" });
    const data = new TextEncoder().encode("spec bytes");
    const a = await writeCheckpointBlob({ content, leases }, NS, {
      ref: "spec-1",
      mediaType: MEDIA_TYPE_CHECKPOINT_CONFIG,
      data: [data],
      lease: lease.id,
    });
    assert.deepEqual(await leases.listResources(NS, "l1"), [{ id: a.digest, type: "content" }]);
    const b = await writeCheckpointBlob({ content, leases }, NS, {
      ref: "spec-2",
      mediaType: MEDIA_TYPE_CHECKPOINT_CONFIG,
      data: [data],
    });
    assert.deepEqual(b, a);
    assert.deepEqual(await content.listStatuses(NS), []);
  });
});

Deno.test("writeCheckpointBlob() under a lease that does not exist fails and leaves no ingest or content", async () => {
  await withStore(async ({ content, leases }) => {
    await rejectsWith(
      writeCheckpointBlob({ content, leases }, NS, {
        ref: "spec-1",
        mediaType: MEDIA_TYPE_CHECKPOINT_CONFIG,
        data: [new Uint8Array([1, 2, 3])],
        lease: "gone",
      }),
      "not_found",
      /Lease gone not found/,
    );
    assert.deepEqual(await content.listStatuses(NS), []);
    assert.deepEqual(await content.walk(NS), []);
  });
});

Deno.test("checkRestoreSource() rejects another media type and a checkpoint the store does not hold", async () => {
  await withStore(async ({ content }) => {
    const digest = digestOf(new Uint8Array([1]));
    await rejectsWith(
      checkRestoreSource(content, NS, { mediaType: "application/vnd.oci.image.layer.v1.tar", digest }),
      "invalid_argument",
      /^Unsupported checkpoint type "application\/vnd\.oci\.image\.layer\.v1\.tar"/,
    );
    await rejectsWith(
      checkRestoreSource(content, NS, { mediaType: MEDIA_TYPE_CHECKPOINT, digest }),
      "not_found",
      new RegExp(`^Checkpoint ${digest} not found`),
    );
  });
});

Deno.test("unpackCheckpoint() of a blob that is not a tar fails as an invalid argument", async () => {
  await withStore(async ({ dir, content }) => {
    const junk = new TextEncoder().encode("this is not a tar archive\n".repeat(40));
    const desc = await writeCheckpointBlob({ content }, NS, {
      ref: "junk",
      mediaType: MEDIA_TYPE_CHECKPOINT,
      data: [junk],
    });
    await Deno.mkdir(`${dir}/out`);
    await rejectsWith(
      unpackCheckpoint(content, NS, { digest: desc.digest, dir: `${dir}/out` }),
      "invalid_argument",
      new RegExp(`^Checkpoint ${desc.digest} cannot be unpacked, it is not a tar archive`),
    );
  });
});

Deno.test("checkpointImagePath() and restoreImagePath() read runc options only", () => {
  const ck = {
    typeUrl: "containerd.runc.v1.CheckpointOptions",
    value: toBinary(
      CheckpointOptionsSchema,
      create(CheckpointOptionsSchema, { imagePath: "/x", exit: true }),
    ),
  };
  assert.equal(checkpointImagePath("io.containerd.runc.v2", ck), "/x");
  assert.equal(checkpointImagePath("io.containerd.kata.v2", ck), "");
  assert.equal(checkpointImagePath("io.containerd.runc.v2", undefined), "");
  assert.throws(
    () =>
      checkpointImagePath("io.containerd.runc.v2", {
        typeUrl: "containerd.runc.v1.Options",
        value: ck.value,
      }),
    /Invalid task checkpoint option for io\.containerd\.runc\.v2/,
  );
  const opts = {
    typeUrl: "containerd.runc.v1.Options",
    value: toBinary(OptionsSchema, create(OptionsSchema, { criuImagePath: "/img" })),
  };
  assert.equal(restoreImagePath("io.containerd.runc.v2", opts), "/img");
  assert.equal(restoreImagePath("io.containerd.runc.v2", undefined), "");
  assert.throws(() => restoreImagePath("io.containerd.runc.v1", ck), /Invalid task create option/);
});

Deno.test("checkpointTask() stores the image tar and the spec, and removes its temporary folder", async () => {
  await withStore(async ({ dir, content, leases }) => {
    await leases.create(NS, { id: "l1" });
    let files = new Map<string, Uint8Array>();
    const { task, paths } = shimTask(async (path) => {
      files = await fakeImageFolder(path);
    });
    const spec = {
      typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec",
      value: new Uint8Array([123]),
    };
    const descs = await checkpointTask(task, {
      store: { content, leases },
      tempRoot: `${dir}/tmp`,
      runtime: "io.containerd.runc.v2",
      spec,
      options: { typeUrl: "containerd.runc.v1.CheckpointOptions", value: new Uint8Array() },
      lease: "l1",
    });
    assert.deepEqual(descs.map((d) => d.mediaType), [MEDIA_TYPE_CHECKPOINT, MEDIA_TYPE_CHECKPOINT_CONFIG]);
    assert.match(paths[0]!, new RegExp(`^${dir}/tmp/ctd-checkpoint`));
    assert.deepEqual([...Deno.readDirSync(`${dir}/tmp`)], [], "the temporary folder is removed");
    const any = fromBinary(AnySchema, await readAll(content, descs[1]!.digest));
    assert.equal(any.typeUrl, spec.typeUrl);
    assert.deepEqual(any.value, spec.value);
    assert.deepEqual(
      (await leases.listResources(NS, "l1")).map((r) => r.id).sort(),
      descs.map((d) => d.digest).sort(),
    );
    await Deno.mkdir(`${dir}/restored`);
    await unpackCheckpoint(content, NS, { digest: descs[0]!.digest, dir: `${dir}/restored` });
    assert.deepEqual(await Deno.readFile(`${dir}/restored/pages-1.img`), files.get("pages-1.img"));
  });
});

Deno.test("checkpointTask() that the shim fails stores nothing and removes its temporary folder", async () => {
  await withStore(async ({ dir, content }) => {
    const { task } = shimTask(async (path) => {
      await Deno.writeTextFile(`${path}/dump.log`, "partial");
      throw new Error("criu failed: type DUMP errno 0");
    });
    await assert.rejects(
      checkpointTask(task, {
        store: { content },
        tempRoot: `${dir}/tmp`,
        runtime: "io.containerd.runc.v2",
        spec: undefined,
      }),
      /criu failed/,
    );
    assert.deepEqual([...Deno.readDirSync(`${dir}/tmp`)], []);
    assert.deepEqual(await content.walk(NS), []);
    assert.deepEqual(await content.listStatuses(NS), []);
  });
});

Deno.test("checkpointTask() with an image path in the options leaves the image there and stores nothing", async () => {
  await withStore(async ({ dir, content }) => {
    const { task, paths } = shimTask(() => Promise.resolve());
    const value = toBinary(
      CheckpointOptionsSchema,
      create(CheckpointOptionsSchema, { imagePath: `${dir}/mine` }),
    );
    const descs = await checkpointTask(task, {
      store: { content },
      tempRoot: `${dir}/tmp`,
      runtime: "io.containerd.runc.v2",
      spec: undefined,
      options: { typeUrl: "containerd.runc.v1.CheckpointOptions", value },
    });
    assert.deepEqual(descs, []);
    assert.deepEqual(paths, [`${dir}/mine`]);
    assert.deepEqual(await content.walk(NS), []);
  });
});
