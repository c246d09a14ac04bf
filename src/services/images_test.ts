import assert from "node:assert/strict";
import { join } from "node:path";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import type { EventPublisher } from "../core/events/mod.ts";
import { ImageStore } from "../core/images/mod.ts";
import { MetadataDB } from "../core/metadata/db.ts";
import { Images } from "../gen/services/images/v1/images_pb.ts";
import { errorInterceptor } from "./errors.ts";
import { createImagesService } from "./images.ts";

type Published = { ns: string; topic: string; event: unknown };

async function withService(
  fn: (
    c: ReturnType<typeof createClient<typeof Images>>,
    events: Published[],
    gcRuns: () => number,
  ) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "berth-images-svc-" });
  const db = new MetadataDB(join(dir, "meta.db"));
  try {
    const events: Published[] = [];
    const publisher: EventPublisher = {
      publish<D extends DescMessage>(ns: string, topic: string, _s: D, event: MessageInitShape<D>) {
        events.push({ ns, topic, event });
      },
    };
    let runs = 0;
    const gc = { scheduleAndWait: () => Promise.resolve(runs++) };
    const svc = createImagesService(new ImageStore(db), { events: publisher, gc });
    const transport = createRouterTransport((r) => svc.register(r), {
      router: { interceptors: [errorInterceptor] },
    });
    await fn(createClient(Images, transport), events, () => runs);
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const H = { headers: { "containerd-namespace": "default" } };
const target = (c: string) => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: "sha256:" + c.repeat(64),
  size: 42n,
});

async function code(p: Promise<unknown>): Promise<Code> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err).code;
  }
  throw new Error("expected the call to fail");
}

Deno.test("Images service creates, lists, updates and deletes images with events", async () => {
  await withService(async (client, events, gcRuns) => {
    const created = await client.create(
      { image: { name: "a:1", labels: { x: "1" }, target: target("a") } },
      H,
    );
    assert.equal(created.image!.target!.size, 42n);
    assert.ok(created.image!.createdAt);
    await client.create({ image: { name: "b:1", target: target("b") } }, H);
    assert.equal(
      await code(client.create({ image: { name: "a:1", target: target("a") } }, H)),
      Code.AlreadyExists,
    );
    assert.equal(
      await code(client.create({ image: { name: "", target: target("a") } }, H)),
      Code.InvalidArgument,
    );
    assert.equal((await client.get({ name: "a:1" }, H)).image!.labels["x"], "1");
    assert.deepEqual((await client.list({ filters: ["labels.x"] }, H)).images.map((i) => i.name), ["a:1"]);
    assert.deepEqual(
      (await client.list({ filters: [`target.digest==${target("b").digest}`] }, H)).images.map((i) => i.name),
      ["b:1"],
    );
    const upd = await client.update({
      image: { name: "a:1", labels: { y: "2" }, target: target("c") },
      updateMask: { paths: ["labels.y"] },
    }, H);
    assert.deepEqual(upd.image!.labels, { x: "1", y: "2" });
    assert.equal(upd.image!.target!.digest, target("a").digest);
    assert.equal(
      await code(
        client.update({ image: { name: "a:1", target: target("c") }, updateMask: { paths: ["bogus"] } }, H),
      ),
      Code.InvalidArgument,
    );
    await client.delete({ name: "a:1", sync: true }, H);
    assert.equal(gcRuns(), 1);
    assert.equal(await code(client.get({ name: "a:1" }, H)), Code.NotFound);
    assert.equal(await code(client.delete({ name: "a:1" }, H)), Code.NotFound);
    assert.equal(
      await code(client.get({ name: "b:1" }, { headers: { "containerd-namespace": "x" } })),
      Code.NotFound,
    );
    assert.deepEqual(events.map((e) => [e.ns, e.topic]), [
      ["default", "/images/create"],
      ["default", "/images/create"],
      ["default", "/images/update"],
      ["default", "/images/delete"],
    ]);
    assert.deepEqual(events[2]!.event, { name: "a:1", labels: { x: "1", y: "2" } });
  });
});

Deno.test("Images service tells onRecorded of each image created or updated, not of a refused create", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-images-svc-" });
  const db = new MetadataDB(join(dir, "meta.db"));
  try {
    let recorded = 0;
    const svc = createImagesService(new ImageStore(db), {
      events: { publish: () => {} },
      onRecorded: () => recorded++,
    });
    const client = createClient(
      Images,
      createRouterTransport((r) => svc.register(r), { router: { interceptors: [errorInterceptor] } }),
    );
    await client.create({ image: { name: "a:1", target: target("a") } }, H);
    assert.equal(
      await code(client.create({ image: { name: "a:1", target: target("a") } }, H)),
      Code.AlreadyExists,
    );
    await client.update({ image: { name: "a:1", target: target("b") } }, H);
    await client.delete({ name: "a:1" }, H);
    assert.equal(recorded, 2);
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
