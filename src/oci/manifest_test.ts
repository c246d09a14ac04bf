import assert from "node:assert/strict";
import { childGcLabels, distributionSourceLabel, parseManifest, refKey } from "./manifest.ts";
import { parsePlatform, platformMatcher } from "./platforms.ts";

const d = (mediaType: string, n: number) => ({
  mediaType,
  digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
  size: n,
});

Deno.test("childGcLabels() numbers manifests and layers per prefix and names the config once, as containerd", () => {
  const labels = childGcLabels([
    d("application/vnd.oci.image.config.v1+json", 1),
    d("application/vnd.oci.image.layer.v1.tar+gzip", 2),
    d("application/vnd.docker.image.rootfs.diff.tar.gzip", 3),
    d("application/vnd.oci.image.manifest.v1+json", 4),
    d("application/x-unknown", 5),
  ]);
  assert.deepEqual(labels, {
    "containerd.io/gc.ref.content.config": d("", 1).digest,
    "containerd.io/gc.ref.content.l.0": d("", 2).digest,
    "containerd.io/gc.ref.content.l.1": d("", 3).digest,
    "containerd.io/gc.ref.content.m.0": d("", 4).digest,
    "containerd.io/gc.ref.content.0": d("", 5).digest,
  });
});

Deno.test("distributionSourceLabel() keys by host without port and keeps a sorted, unique repository list", () => {
  assert.deepEqual(distributionSourceLabel("127.0.0.1:5000", "b/x", {}), [
    "containerd.io/distribution.source.127.0.0.1",
    "b/x",
  ]);
  assert.deepEqual(
    distributionSourceLabel("docker.io", "library/a", {
      "containerd.io/distribution.source.docker.io": "z/y,library/a",
    }),
    ["containerd.io/distribution.source.docker.io", "library/a,z/y"],
  );
});

Deno.test("parseManifest() names the digest and the defect of a malformed manifest", () => {
  const desc = d("application/vnd.oci.image.manifest.v1+json", 7);
  const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  assert.throws(
    () => parseManifest(desc, enc({ schemaVersion: 2, config: {} })),
    /sha256:7{64}.*config has no mediaType/,
  );
  assert.throws(() => parseManifest(desc, new TextEncoder().encode("{")), /not JSON/);
  assert.throws(() => parseManifest(desc, enc({ schemaVersion: 1 })), /schema 1/);
  const ok = parseManifest(
    desc,
    enc({ schemaVersion: 2, config: d("application/vnd.oci.image.config.v1+json", 1), layers: [] }),
  );
  assert.equal(ok.kind, "manifest");
  assert.equal(refKey(desc), `manifest-${desc.digest}`);
});

Deno.test("platformMatcher() matches arm64 as arm64/v8 and prefers the exact platform over a compatible one", () => {
  const m = platformMatcher([parsePlatform("linux/arm64")]);
  assert.ok(m.match({ os: "linux", architecture: "arm64", variant: "v8" }));
  assert.ok(m.match({ os: "linux", architecture: "arm64" }));
  assert.ok(!m.match({ os: "linux", architecture: "amd64" }));
  assert.ok(
    m.rank({ os: "linux", architecture: "arm64" }) <
      m.rank({ os: "linux", architecture: "arm", variant: "v7" }),
  );
  const amd = platformMatcher([parsePlatform("linux/amd64")]);
  assert.ok(
    amd.match({ os: "linux", architecture: "amd64" }) && !amd.match({ os: "linux", architecture: "arm64" }),
  );
  assert.throws(() => parsePlatform("linux//x"), /Invalid platform/);
});
