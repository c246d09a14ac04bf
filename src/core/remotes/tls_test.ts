import assert from "node:assert/strict";
import { startRegistry } from "../../../tests/helpers/registry.ts";
import { buildFixtureImages, pushFixtures } from "../../../tests/fixtures/images.ts";
import { BerthError } from "../../base/errors.ts";
import { Resolver } from "./mod.ts";

Deno.test("Resolver over HTTPS to a real docker-registry with a private CA", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "berth-tls-" });
  const registry = await startRegistry({ tls: true });
  try {
    const set = await buildFixtureImages(`${dir}/layout`);
    const pushed = await pushFixtures(registry, set, { names: ["single"] });
    const ref = pushed.single.reference;
    const digest = set.images.single.descriptor.digest;
    const [name, port] = registry.host.split(":");
    const hostDir = `${dir}/certs.d/${name}_${port}_`;
    await Deno.mkdir(hostDir, { recursive: true });
    const writeHosts = (extra: string) =>
      Deno.writeTextFile(`${hostDir}/hosts.toml`, `server = "https://${registry.host}"\n${extra}`);

    await t.step("an unknown CA is a TLS failure naming the host", async () => {
      await writeHosts("");
      using resolver = new Resolver({ configPath: `${dir}/certs.d`, dockerConfig: false });
      await assert.rejects(resolver.resolve(ref), (err: unknown) => {
        assert.ok(err instanceof BerthError);
        assert.equal(err.kind, "unavailable");
        assert.match(
          err.message,
          new RegExp(`^Cannot resolve "${ref}": TLS failure .* at ${registry.host}$`),
        );
        return true;
      });
    });

    await t.step("hosts.toml ca (relative to its folder) makes the registry trusted", async () => {
      await Deno.copyFile(registry.caCertPath!, `${hostDir}/ca.pem`);
      await writeHosts(`ca = "ca.pem"\n`);
      using resolver = new Resolver({ configPath: `${dir}/certs.d`, dockerConfig: false });
      assert.equal((await resolver.resolve(ref)).descriptor.digest, digest);
      const layer = set.images.single.manifests[0]!.layers[0]!;
      const bytes = await new Response(await resolver.fetcher(ref).fetch(layer)).arrayBuffer();
      assert.equal(bytes.byteLength, layer.size);
    });

    await t.step("the caCerts option trusts the CA for every host", async () => {
      await writeHosts("");
      using resolver = new Resolver({
        configPath: `${dir}/certs.d`,
        caCerts: [await Deno.readTextFile(registry.caCertPath!)],
        dockerConfig: false,
      });
      assert.equal((await resolver.resolve(ref)).descriptor.digest, digest);
    });

    await t.step("skip_verify is refused clearly rather than silently ignored", async () => {
      await writeHosts("skip_verify = true\n");
      using resolver = new Resolver({ configPath: `${dir}/certs.d`, dockerConfig: false });
      await assert.rejects(
        resolver.resolve(ref),
        (err: unknown) =>
          err instanceof BerthError && err.kind === "not_implemented" &&
          /Cannot skip TLS verification/.test(err.message),
      );
    });
  } finally {
    await registry.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
