import assert from "node:assert/strict";
import { startRegistry } from "../../../tests/helpers/registry.ts";
import { buildFixtureImages, pushFixtures } from "../../../tests/fixtures/images.ts";
import { BerthError } from "../../base/errors.ts";
import { configureHosts, parseHostsToml, Resolver } from "./mod.ts";

Deno.test("parseHostsToml() lists mirrors in file order with the server last", () => {
  const hosts = parseHostsToml(
    `
server = "https://registry.example.com"

[host."http://mirror-b:5000"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
  [host."http://mirror-b:5000".header]
    x-custom = "1"
    x-list = ["a", "b"]

[host."https://mirror-a.example.com/some/prefix"]
  capabilities = ["pull"]
  ca = ["ca.crt", "/abs/ca2.crt"]

[host."https://odd.example.com/api"]
  override_path = true
`,
    "/etc/berth/certs.d/registry.example.com",
  );
  assert.deepEqual(hosts.map((h) => `${h.scheme}://${h.host}${h.path}`), [
    "http://mirror-b:5000/v2",
    "https://mirror-a.example.com/some/prefix/v2",
    "https://odd.example.com/api",
    "https://registry.example.com/v2",
  ]);
  assert.deepEqual([...hosts[0]!.capabilities], ["pull", "resolve"]);
  assert.equal(hosts[0]!.skipVerify, true);
  assert.deepEqual(hosts[0]!.header, { "x-custom": ["1"], "x-list": ["a", "b"] });
  assert.deepEqual([...hosts[1]!.capabilities], ["pull"]);
  assert.deepEqual(hosts[1]!.caFiles, ["/etc/berth/certs.d/registry.example.com/ca.crt", "/abs/ca2.crt"]);
  assert.deepEqual([...hosts[3]!.capabilities].sort(), ["pull", "push", "resolve"]);
});

Deno.test("parseHostsToml() rejects unknown capabilities and bad TOML naming the file", () => {
  assert.throws(
    () => parseHostsToml(`[host."http://m"]\ncapabilities = ["fly"]`, "/d"),
    (err: unknown) =>
      err instanceof BerthError && err.kind === "invalid_argument" &&
      /unknown capability "fly"/.test(err.message),
  );
  assert.throws(() => parseHostsToml("server = ", "/d"), /Hosts file \/d\/hosts.toml is not valid TOML/);
});

Deno.test("configureHosts() picks defaults: docker.io upstream, plain HTTP for loopback ports", async () => {
  const [hub] = await configureHosts("docker.io");
  assert.equal(`${hub!.scheme}://${hub!.host}${hub!.path}`, "https://registry-1.docker.io/v2");
  assert.equal((await configureHosts("127.0.0.1:5000"))[0]!.scheme, "http");
  assert.equal((await configureHosts("localhost:5000"))[0]!.scheme, "http");
  assert.equal((await configureHosts("ghcr.io"))[0]!.scheme, "https");
  assert.equal((await configureHosts("ghcr.io", { plainHttp: true }))[0]!.scheme, "http");
});

Deno.test("configureHosts() finds host_port_ folders, plain host folders and _default", async () => {
  const root = await Deno.makeTempDir({ prefix: "berth-hosts-" });
  try {
    await Deno.mkdir(`${root}/reg.local_5000_`);
    await Deno.writeTextFile(`${root}/reg.local_5000_/hosts.toml`, `server = "http://one:1"`);
    await Deno.mkdir(`${root}/reg.other`);
    await Deno.writeTextFile(`${root}/reg.other/hosts.toml`, `server = "http://two:2"`);
    await Deno.mkdir(`${root}/_default`);
    await Deno.writeTextFile(`${root}/_default/hosts.toml`, `[host."http://mirror:3"]\n`);
    assert.equal((await configureHosts("reg.local:5000", { configPath: root }))[0]!.host, "one:1");
    assert.equal((await configureHosts("reg.other", { configPath: root }))[0]!.host, "two:2");
    const fallback = await configureHosts("elsewhere.io", { configPath: root });
    assert.deepEqual(fallback.map((h) => `${h.scheme}://${h.host}`), [
      "http://mirror:3",
      "https://elsewhere.io",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("Resolver falls back from failing mirrors to the upstream registry", async () => {
  const root = await Deno.makeTempDir({ prefix: "berth-mirrors-" });
  const registry = await startRegistry();
  const seen: { path: string; header: string | null }[] = [];
  // A live mirror that fails: it must be asked first (with its configured header) and then skipped.
  const broken = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    seen.push({
      path: new URL(req.url).pathname + new URL(req.url).search,
      header: req.headers.get("x-mirror"),
    });
    return new Response("boom", { status: req.url.includes("/manifests/") ? 404 : 503 });
  });
  const dead = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (dead.addr as Deno.NetAddr).port;
  dead.close();
  try {
    const set = await buildFixtureImages(`${root}/layout`);
    const pushed = await pushFixtures(registry, set, { names: ["single"] });
    const [name, port] = registry.host.split(":");
    await Deno.mkdir(`${root}/certs.d/${name}_${port}_`, { recursive: true });
    await Deno.writeTextFile(
      `${root}/certs.d/${name}_${port}_/hosts.toml`,
      [
        `server = "http://${registry.host}"`,
        `[host."http://127.0.0.1:${deadPort}"]`,
        `  capabilities = ["pull", "resolve"]`,
        `[host."http://127.0.0.1:${broken.addr.port}"]`,
        `  capabilities = ["pull", "resolve"]`,
        `  header = { x-mirror = "yes" }`,
      ].join("\n"),
    );
    using resolver = new Resolver({ configPath: `${root}/certs.d`, dockerConfig: false });
    const { descriptor } = await resolver.resolve(pushed.single.reference);
    assert.equal(descriptor.digest, set.images.single.descriptor.digest);
    const layer = set.images.single.manifests[0]!.layers[0]!;
    const bytes = await new Response(await resolver.fetcher(pushed.single.reference).fetch(layer))
      .arrayBuffer();
    assert.equal(bytes.byteLength, layer.size);
    assert.deepEqual(seen, [
      { path: `/v2/berth/single/manifests/v1?ns=${encodeURIComponent(registry.host)}`, header: "yes" },
      {
        path: `/v2/berth/single/blobs/${layer.digest}?ns=${encodeURIComponent(registry.host)}`,
        header: "yes",
      },
    ]);
  } finally {
    await broken.shutdown();
    await registry.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("Resolver reports the most telling error when every host fails", async () => {
  const root = await Deno.makeTempDir({ prefix: "berth-mirrors-" });
  const notFound = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(null, { status: 404 }),
  );
  const dead = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (dead.addr as Deno.NetAddr).port;
  dead.close();
  try {
    const upstream = `127.0.0.1:${notFound.addr.port}`;
    await Deno.mkdir(`${root}/_default`);
    await Deno.writeTextFile(`${root}/_default/hosts.toml`, `[host."http://127.0.0.1:${deadPort}"]\n`);
    using resolver = new Resolver({ configPath: root, dockerConfig: false });
    const ref = `${upstream}/x:1`;
    await assert.rejects(resolver.resolve(ref), (err: unknown) => {
      assert.ok(err instanceof BerthError);
      assert.equal(err.message, `Cannot resolve "${ref}": manifest unknown (404) at ${upstream}`);
      return true;
    });
  } finally {
    await notFound.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("configureHosts() with CRI mirrors: the host's mirrors, then the upstream, pull and resolve only", async () => {
  const mirrors = {
    "docker.io": ["mirror.example:5000", "http://127.0.0.1:5001/prefix"],
    "*": ["https://all.example"],
  };
  const hosts = await configureHosts("docker.io", { mirrors });
  assert.deepEqual(hosts.map((h) => `${h.scheme}://${h.host}${h.path}`), [
    "https://mirror.example:5000/v2",
    "http://127.0.0.1:5001/prefix",
    "https://registry-1.docker.io/v2",
  ]);
  assert.deepEqual([...hosts[0]!.capabilities].sort(), ["pull", "resolve"]);
  const other = await configureHosts("quay.io", { mirrors });
  assert.deepEqual(other.map((h) => `${h.scheme}://${h.host}`), ["https://all.example", "https://quay.io"]);
  // A loopback registry is reached over plain HTTP, and not listed twice when it is its own mirror.
  const local = await configureHosts("127.0.0.1:5000", {
    mirrors: { "127.0.0.1:5000": ["http://127.0.0.1:5000"] },
  });
  assert.deepEqual(local.map((h) => `${h.scheme}://${h.host}`), ["http://127.0.0.1:5000"]);
});
