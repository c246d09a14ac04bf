/** Protocol corners a real registry does not show on demand, played by small local servers. */

import assert from "node:assert/strict";
import { BerthError } from "../../base/errors.ts";
import { Resolver } from "./mod.ts";

type Handler = (req: Request) => Response | Promise<Response>;

async function withServer(handler: Handler, fn: (host: string) => Promise<void>): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  try {
    await fn(`127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

const SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws";

Deno.test("resolve() refuses a schema 1 manifest announced by Content-Type", async () => {
  await withServer(() =>
    new Response(null, {
      headers: {
        "content-type": SCHEMA1,
        "docker-content-digest": `sha256:${"c".repeat(64)}`,
        "content-length": "10",
      },
    }), async (host) => {
    using resolver = new Resolver({ dockerConfig: false });
    const ref = `${host}/old/image:1`;
    await assert.rejects(resolver.resolve(ref), (err: unknown) => {
      assert.ok(err instanceof BerthError);
      assert.equal(err.kind, "not_implemented");
      assert.match(
        err.message,
        /^Cannot resolve "127\.0\.0\.1:\d+\/old\/image:1": schema 1 manifests are not supported/,
      );
      return true;
    });
  });
});

Deno.test("resolve() refuses a schema 1 manifest recognised from its body", async () => {
  const body = JSON.stringify({ schemaVersion: 1, name: "old/image", tag: "1", fsLayers: [] });
  await withServer(
    (req) =>
      new Response(req.method === "HEAD" ? null : body, { headers: { "content-type": "application/json" } }),
    async (host) => {
      using resolver = new Resolver({ dockerConfig: false });
      await assert.rejects(resolver.resolve(`${host}/old/image:1`), /schema 1 manifests are not supported/);
    },
  );
});

Deno.test("resolve() without a digest header hashes the manifest it GETs", async () => {
  const body = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, manifests: [] }));
  const digest = "sha256:" +
    Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-256", body)),
      (b) => b.toString(16).padStart(2, "0"),
    )
      .join("");
  await withServer((req) => new Response(req.method === "HEAD" ? null : body), async (host) => {
    using resolver = new Resolver({ dockerConfig: false });
    const { descriptor } = await resolver.resolve(`${host}/x:1`);
    assert.deepEqual(descriptor, {
      mediaType: "application/vnd.oci.image.index.v1+json",
      digest,
      size: body.byteLength,
    });
  });
});

Deno.test("fetch() with an offset drops the head when the server ignores Range", async () => {
  const blob = new TextEncoder().encode("0123456789abcdef");
  await withServer(() => new Response(blob), async (host) => {
    using resolver = new Resolver({ dockerConfig: false });
    const desc = {
      mediaType: "application/octet-stream",
      digest: `sha256:${"d".repeat(64)}`,
      size: blob.byteLength,
    };
    const tail = await new Response(await resolver.fetcher(`${host}/x:1`).fetch(desc, { offset: 10 })).text();
    assert.equal(tail, "abcdef");
  });
});

Deno.test("fetch() follows a redirect to another origin without sending the credentials there", async () => {
  let storageAuth: string | null = "unset";
  await withServer((req) => {
    storageAuth = req.headers.get("authorization");
    return new Response("blob-bytes");
  }, async (storage) => {
    await withServer((req) => {
      if (!req.headers.get("authorization")) {
        return new Response(null, { status: 401, headers: { "www-authenticate": 'Basic realm="r"' } });
      }
      return new Response(null, {
        status: 307,
        headers: { location: `http://${storage}/bucket/blob?sig=1` },
      });
    }, async (host) => {
      using resolver = new Resolver({ credentials: "u:p", dockerConfig: false });
      const desc = { mediaType: "application/octet-stream", digest: `sha256:${"e".repeat(64)}`, size: 10 };
      assert.equal(
        await new Response(await resolver.fetcher(`${host}/x:1`).fetch(desc)).text(),
        "blob-bytes",
      );
      assert.equal(storageAuth, null);
    });
  });
});

Deno.test("resolve() gives up on a registry that does not answer within the timeout", async () => {
  let release!: () => void;
  const hang = new Promise<void>((r) => release = r);
  await withServer(async () => {
    await hang;
    return new Response(null, { status: 500 });
  }, async (host) => {
    using resolver = new Resolver({ dockerConfig: false, timeoutMs: 200 });
    const ref = `${host}/x:1`;
    try {
      await assert.rejects(resolver.resolve(ref), (err: unknown) => {
        assert.ok(err instanceof BerthError);
        assert.equal(err.kind, "deadline_exceeded");
        assert.equal(err.message, `Cannot resolve "${ref}": no response within 200 ms at ${host}`);
        return true;
      });
    } finally {
      release();
    }
  });
});
