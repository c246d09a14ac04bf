import assert from "node:assert/strict";
import { join } from "node:path";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { LeaseManager } from "../core/leases/mod.ts";
import { MetadataDB } from "../core/metadata/db.ts";
import { Leases } from "../gen/services/leases/v1/leases_pb.ts";
import { errorInterceptor } from "./errors.ts";
import { createLeasesService } from "./leases.ts";

async function code(p: Promise<unknown>): Promise<Code> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err).code;
  }
  throw new Error("expected the call to fail");
}

Deno.test("Leases service manages leases and their resources per namespace", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-leases-svc-" });
  const db = new MetadataDB(join(dir, "meta.db"));
  try {
    const svc = createLeasesService(new LeaseManager(db));
    const client = createClient(
      Leases,
      createRouterTransport((r) => svc.register(r), { router: { interceptors: [errorInterceptor] } }),
    );
    const H = { headers: { "containerd-namespace": "default" } };
    const l = await client.create({
      id: "pull",
      labels: { "containerd.io/gc.expire": "2030-01-01T00:00:00Z" },
    }, H);
    assert.equal(l.lease!.id, "pull");
    assert.ok(l.lease!.createdAt);
    assert.equal(await code(client.create({ id: "pull" }, H)), Code.AlreadyExists);
    const generated = await client.create({}, H);
    assert.notEqual(generated.lease!.id, "");
    assert.deepEqual((await client.list({ filters: ["id==pull"] }, H)).leases.map((x) => x.id), ["pull"]);
    const digest = "sha256:" + "b".repeat(64);
    await client.addResource({ id: "pull", resource: { id: digest, type: "content" } }, H);
    assert.deepEqual(
      (await client.listResources({ id: "pull" }, H)).resources.map((r) => [r.id, r.type]),
      [[digest, "content"]],
    );
    assert.equal(
      await code(client.addResource({ id: "pull", resource: { id: "x", type: "weird" } }, H)),
      Code.Unimplemented,
    );
    await client.deleteResource({ id: "pull", resource: { id: digest, type: "content" } }, H);
    assert.deepEqual((await client.listResources({ id: "pull" }, H)).resources, []);
    await client.delete({ id: "pull", sync: true }, H);
    assert.equal(await code(client.delete({ id: "pull" }, H)), Code.NotFound);
    assert.deepEqual((await client.list({}, { headers: { "containerd-namespace": "other" } })).leases, []);
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
