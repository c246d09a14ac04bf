import assert from "node:assert/strict";
import { startRegistry } from "../../../tests/helpers/registry.ts";
import { buildFixtureImages, pushFixtures } from "../../../tests/fixtures/images.ts";
import { BerthError } from "../../base/errors.ts";
import { parseCredentials, parseWWWAuthenticate, Resolver } from "./mod.ts";

Deno.test("parseWWWAuthenticate() reads Bearer parameters, quoted or not, and several challenges", () => {
  assert.deepEqual(
    parseWWWAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
    ),
    [{
      scheme: "bearer",
      params: {
        realm: "https://auth.docker.io/token",
        service: "registry.docker.io",
        scope: "repository:library/busybox:pull",
      },
    }],
  );
  assert.deepEqual(
    parseWWWAuthenticate('Basic realm="a \\"quoted\\" realm", Bearer realm=http://x/t, error=invalid_token'),
    [
      { scheme: "basic", params: { realm: 'a "quoted" realm' } },
      { scheme: "bearer", params: { realm: "http://x/t", error: "invalid_token" } },
    ],
  );
  assert.deepEqual(parseWWWAuthenticate("Negotiate abc=="), [{ scheme: "negotiate", params: {} }]);
  assert.deepEqual(parseWWWAuthenticate(""), []);
});

Deno.test("parseCredentials() keeps colons in the password", () => {
  assert.deepEqual(parseCredentials("me:a:b"), { username: "me", password: "a:b" });
  assert.deepEqual(parseCredentials("me"), { username: "me", password: "" });
});

Deno.test("Resolver with basic auth against a real docker-registry", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "berth-auth-" });
  const registry = await startRegistry({ auth: { username: "berth", password: "s3cret:x" } });
  try {
    const set = await buildFixtureImages(`${dir}/layout`);
    const pushed = await pushFixtures(registry, set, { names: ["single"] });
    const ref = pushed.single.reference;
    const layer = set.images.single.manifests[0]!.layers[0]!;

    await t.step("the right credentials resolve, fetch and push", async () => {
      using resolver = new Resolver({ credentials: "berth:s3cret:x", dockerConfig: false });
      const { descriptor } = await resolver.resolve(ref);
      assert.equal(descriptor.digest, set.images.single.descriptor.digest);
      const body = await new Response(await resolver.fetcher(ref).fetch(layer)).arrayBuffer();
      assert.equal(body.byteLength, layer.size);
      const config = set.images.single.manifests[0]!.config;
      assert.equal(
        await resolver.pusher(`${registry.host}/other/repo:1`).push(config, await set.blob(config.digest)),
        "pushed",
      );
    });

    await t.step("credentials come from a docker config.json auths entry", async () => {
      const path = `${dir}/config.json`;
      await Deno.writeTextFile(
        path,
        JSON.stringify({ auths: { [`http://${registry.host}`]: { auth: btoa("berth:s3cret:x") } } }),
      );
      using resolver = new Resolver({ dockerConfig: path });
      assert.equal((await resolver.resolve(ref)).descriptor.digest, set.images.single.descriptor.digest);
    });

    await t.step(
      "wrong credentials fail as permission denied naming reference, status and host",
      async () => {
        using resolver = new Resolver({ credentials: "berth:wrong", dockerConfig: false });
        await assert.rejects(resolver.resolve(ref), (err: unknown) => {
          assert.ok(err instanceof BerthError);
          assert.equal(err.kind, "permission_denied");
          assert.equal(err.message, `Cannot resolve "${ref}": unauthorized (401) at ${registry.host}`);
          return true;
        });
        await assert.rejects(
          resolver.fetcher(ref).fetch(layer),
          (err: unknown) =>
            err instanceof BerthError && err.kind === "permission_denied" && /\(401\)/.test(err.message),
        );
      },
    );

    await t.step("no credentials fail as permission denied", async () => {
      using resolver = new Resolver({ dockerConfig: false });
      await assert.rejects(
        resolver.resolve(ref),
        (err: unknown) => err instanceof BerthError && err.kind === "permission_denied",
      );
    });
  } finally {
    await registry.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A registry and token server in one: /v2/ wants a bearer token that /token hands out for basic creds. */
function startBearerServer() {
  const tokenRequests: URLSearchParams[] = [];
  const registryAuth: (string | null)[] = [];
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: `sha256:${"a".repeat(64)}`,
      size: 2,
    },
    layers: [],
  }));
  let host = "";
  const server: Deno.HttpServer<Deno.NetAddr> = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
  }, (req): Response => {
    const url = new URL(req.url);
    if (url.pathname === "/token") {
      tokenRequests.push(url.searchParams);
      if (req.headers.get("authorization") !== `Basic ${btoa("alice:pw")}`) {
        return new Response("no", { status: 401 });
      }
      return Response.json({ token: `tok-${tokenRequests.length}`, expires_in: 300 });
    }
    registryAuth.push(req.headers.get("authorization"));
    const auth = req.headers.get("authorization") ?? "";
    if (!auth.startsWith("Bearer tok-")) {
      return new Response(null, {
        status: 401,
        headers: {
          "www-authenticate":
            `Bearer realm="http://${host}/token",service="fake-registry",scope="repository:team/app:pull"`,
        },
      });
    }
    if (url.pathname === "/v2/team/app/manifests/1") {
      return new Response(req.method === "HEAD" ? null : manifest, {
        headers: {
          "content-type": "application/vnd.oci.image.manifest.v1+json",
          "content-length": String(manifest.byteLength),
          "docker-content-digest": `sha256:${"b".repeat(64)}`,
        },
      });
    }
    return new Response(null, { status: 404 });
  });
  host = `127.0.0.1:${server.addr.port}`;
  return { server, host, tokenRequests, registryAuth };
}

Deno.test("Resolver answers a Bearer challenge with a token fetched with basic creds, and caches it", async () => {
  const { server, host, tokenRequests, registryAuth } = startBearerServer();
  try {
    using resolver = new Resolver({ credentials: "alice:pw", dockerConfig: false });
    const ref = `${host}/team/app:1`;
    const first = await resolver.resolve(ref);
    assert.equal(first.descriptor.digest, `sha256:${"b".repeat(64)}`);
    await resolver.resolve(ref);
    assert.equal(tokenRequests.length, 1, "the token is fetched once and reused");
    assert.equal(tokenRequests[0]!.get("service"), "fake-registry");
    assert.deepEqual(tokenRequests[0]!.getAll("scope"), ["repository:team/app:pull"]);
    assert.deepEqual(registryAuth, [null, "Bearer tok-1", "Bearer tok-1"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("Resolver reports a token server refusing the credentials as permission denied", async () => {
  const { server, host } = startBearerServer();
  try {
    using resolver = new Resolver({ credentials: "alice:wrong", dockerConfig: false });
    const ref = `${host}/team/app:1`;
    await assert.rejects(resolver.resolve(ref), (err: unknown) => {
      assert.ok(err instanceof BerthError);
      assert.equal(err.kind, "permission_denied");
      assert.equal(
        err.message,
        `Cannot resolve "${ref}": token server ${host} refused the credentials (401)`,
      );
      return true;
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("Resolver with bearer tokens against a real docker-registry using token auth", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "berth-token-" });
  const registry = await startRegistry({ tokenAuth: { username: "bob", password: "t0ken" } });
  try {
    const set = await buildFixtureImages(`${dir}/layout`);
    const pushed = await pushFixtures(registry, set, { names: ["single"] });
    const ref = pushed.single.reference;
    const m = set.images.single.manifests[0]!;

    await t.step("resolve, fetch and push work with a token fetched once per scope", async () => {
      using resolver = new Resolver({ credentials: "bob:t0ken", dockerConfig: false });
      const before = registry.tokenServer!.issued();
      assert.equal((await resolver.resolve(ref)).descriptor.digest, set.images.single.descriptor.digest);
      const bytes = await new Response(await resolver.fetcher(ref).fetch(m.layers[0]!)).arrayBuffer();
      assert.equal(bytes.byteLength, m.layers[0]!.size);
      assert.equal(registry.tokenServer!.issued() - before, 1, "pull requests share one token");
      const target = `${registry.host}/copy/single:1`;
      const pusher = resolver.pusher(target);
      assert.equal(
        await pusher.push(m.layers[0]!, await set.blob(m.layers[0]!.digest), { mountFrom: ["berth/single"] }),
        "mounted",
      );
      assert.equal(await pusher.push(m.config, await set.blob(m.config.digest)), "pushed");
      assert.equal(
        await pusher.push(m.descriptor, await set.blob(m.descriptor.digest), { tag: "1" }),
        "pushed",
      );
      assert.equal((await resolver.resolve(target)).descriptor.digest, m.descriptor.digest);
    });

    await t.step("wrong credentials fail at the token server as permission denied", async () => {
      using resolver = new Resolver({ credentials: "bob:nope", dockerConfig: false });
      await assert.rejects(resolver.resolve(ref), (err: unknown) => {
        assert.ok(err instanceof BerthError);
        assert.equal(err.kind, "permission_denied");
        assert.match(
          err.message,
          /^Cannot resolve "[^"]+": token server 127\.0\.0\.1:\d+ refused the credentials \(401\)$/,
        );
        return true;
      });
    });
  } finally {
    await registry.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
