import assert from "node:assert/strict";
import { startRegistry } from "../../../tests/helpers/registry.ts";
import { buildFixtureImages, FIXTURE_NAMES, pushFixtures } from "../../../tests/fixtures/images.ts";
import { BerthError } from "../../base/errors.ts";
import { Resolver } from "./mod.ts";
import type { Descriptor } from "../../oci/image.ts";

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function sha256(data: Uint8Array): Promise<string> {
  const hash = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return "sha256:" + Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("Resolver against a real docker-registry", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "berth-fixtures-" });
  const registry = await startRegistry();
  const resolver = new Resolver({ dockerConfig: false });
  try {
    const set = await buildFixtureImages(dir);
    const pushed = await pushFixtures(registry, set);

    await t.step("resolve() maps each fixture tag to the fixture's manifest digest", async () => {
      for (const name of FIXTURE_NAMES) {
        const { name: resolvedName, descriptor } = await resolver.resolve(pushed[name].reference);
        assert.equal(resolvedName, pushed[name].reference);
        assert.equal(descriptor.digest, set.images[name].descriptor.digest, name);
        assert.equal(descriptor.size, set.images[name].descriptor.size, name);
        assert.equal(descriptor.mediaType, set.images[name].descriptor.mediaType, name);
      }
    });

    await t.step("resolve() by digest returns that digest", async () => {
      const d = set.images.multi.manifests[1]!.descriptor;
      const ref = `${registry.host}/berth/multi@${d.digest}`;
      const { descriptor } = await resolver.resolve(ref);
      assert.equal(descriptor.digest, d.digest);
      assert.equal(descriptor.mediaType, d.mediaType);
    });

    await t.step(
      "resolve() of a missing tag fails with not found naming reference, status and host",
      async () => {
        const ref = `${registry.host}/berth/single:nope`;
        await assert.rejects(resolver.resolve(ref), (err: unknown) => {
          assert.ok(err instanceof BerthError);
          assert.equal(err.kind, "not_found");
          assert.equal(err.message, `Cannot resolve "${ref}": manifest unknown (404) at ${registry.host}`);
          return true;
        });
      },
    );

    await t.step("fetch() returns every blob of every image with its digest", async () => {
      for (const name of FIXTURE_NAMES) {
        const fetcher = resolver.fetcher(pushed[name].reference);
        const image = set.images[name];
        const descs: Descriptor[] = [image.descriptor];
        for (const m of image.manifests) descs.push(m.descriptor, m.config, ...m.layers);
        for (const desc of descs) {
          const bytes = await readAll(await fetcher.fetch(desc));
          assert.equal(bytes.byteLength, desc.size, `${name} ${desc.digest}`);
          assert.equal(await sha256(bytes), desc.digest, `${name} ${desc.mediaType}`);
        }
      }
    });

    await t.step("fetch() with an offset returns the tail of the blob", async () => {
      const layer = set.images.single.manifests[0]!.layers[0]!;
      const whole = await set.blob(layer.digest);
      const offset = 12345;
      const tail = await readAll(await resolver.fetcher(pushed.single.reference).fetch(layer, { offset }));
      assert.equal(tail.byteLength, whole.byteLength - offset);
      assert.deepEqual(tail, whole.subarray(offset));
    });

    await t.step("fetch() of an unknown blob fails with not found", async () => {
      const desc = { mediaType: "application/octet-stream", digest: `sha256:${"0".repeat(64)}`, size: 1 };
      await assert.rejects(
        resolver.fetcher(pushed.single.reference).fetch(desc),
        (err: unknown) =>
          err instanceof BerthError && err.kind === "not_found" &&
          /blob unknown.*\(404\) at /.test(err.message),
      );
    });

    await t.step("fetch() honours an aborted signal", async () => {
      const layer = set.images.single.manifests[0]!.layers[0]!;
      const ac = new AbortController();
      ac.abort();
      await assert.rejects(resolver.fetcher(pushed.single.reference).fetch(layer, { signal: ac.signal }));
    });

    await t.step(
      "push() copies an image to a new repository, which then resolves to the same digest",
      async () => {
        const image = set.images.layered;
        const m = image.manifests[0]!;
        const ref = `${registry.host}/copied/layered:v2`;
        const pusher = resolver.pusher(ref);
        const results: string[] = [];
        // Layer 1 is mounted from the repository skopeo pushed, layer 2 streamed in chunks, layer 3 streamed whole.
        results.push(
          await pusher.push(m.layers[0]!, await set.blob(m.layers[0]!.digest), {
            mountFrom: ["berth/layered"],
          }),
        );
        const file = await Deno.open(`${set.dir}/blobs/sha256/${m.layers[1]!.digest.slice(7)}`);
        results.push(await pusher.push(m.layers[1]!, file.readable, { chunkSize: 1000 }));
        const file2 = await Deno.open(`${set.dir}/blobs/sha256/${m.layers[2]!.digest.slice(7)}`);
        results.push(await pusher.push(m.layers[2]!, file2.readable));
        results.push(await pusher.push(m.config, await set.blob(m.config.digest)));
        results.push(
          await pusher.push(image.descriptor, await set.blob(image.descriptor.digest), { tag: "v2" }),
        );
        assert.deepEqual(results, ["mounted", "pushed", "pushed", "pushed", "pushed"]);

        const { descriptor } = await resolver.resolve(ref);
        assert.equal(descriptor.digest, image.descriptor.digest);
        // Pushing again finds everything in place.
        assert.equal(await pusher.push(m.config, await set.blob(m.config.digest)), "exists");
        assert.equal(
          await pusher.push(image.descriptor, await set.blob(image.descriptor.digest), { tag: "v2" }),
          "exists",
        );
        const layer1 = await readAll(await resolver.fetcher(ref).fetch(m.layers[1]!));
        assert.equal(await sha256(layer1), m.layers[1]!.digest);
      },
    );

    await t.step(
      "push() of a stream whose bytes do not match the digest is refused by the registry",
      async () => {
        const bogus = new TextEncoder().encode("not what the digest says");
        const desc = {
          mediaType: "application/octet-stream",
          digest: `sha256:${"1".repeat(64)}`,
          size: bogus.byteLength,
        };
        await assert.rejects(
          resolver.pusher(`${registry.host}/copied/bad:v1`).push(desc, bogus),
          (err: unknown) => {
            assert.ok(err instanceof BerthError);
            assert.match(err.message, /^Cannot push sha256:1+ to "[^"]+": .*\(400\) at 127\.0\.0\.1:\d+$/);
            return true;
          },
        );
      },
    );
  } finally {
    resolver.close();
    await registry.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Resolver reports a dead registry as unavailable naming the host", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  using resolver = new Resolver({ dockerConfig: false });
  const ref = `127.0.0.1:${port}/x:1`;
  await assert.rejects(resolver.resolve(ref), (err: unknown) => {
    assert.ok(err instanceof BerthError);
    assert.equal(err.kind, "unavailable");
    assert.equal(err.message, `Cannot resolve "${ref}": connection refused at 127.0.0.1:${port}`);
    return true;
  });
});
