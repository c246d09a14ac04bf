import assert from "node:assert/strict";
import type { BlobStore } from "./blobs.ts";
import { digestOf } from "./digest_of.ts";
import { type Descriptor, MediaType } from "./image.ts";
import { imageRootfs } from "./image_rootfs.ts";
import { hostPlatform, platformMatcher } from "./platforms.ts";

/** A BlobStore over a map, read-only: enough for walking an image. */
function memoryBlobs(): BlobStore & { put(value: unknown, mediaType: string): Descriptor } {
  const blobs = new Map<string, Uint8Array>();
  return {
    put(value, mediaType) {
      const bytes = new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));
      const digest = digestOf(bytes);
      blobs.set(digest, bytes);
      return { mediaType, digest, size: bytes.byteLength };
    },
    info: (digest) =>
      Promise.resolve(blobs.has(digest) ? { size: blobs.get(digest)!.length, labels: {} } : undefined),
    async *read(digest) {
      const b = blobs.get(digest);
      if (!b) throw new Error(`Blob ${digest} not found`);
      yield b;
    },
    write: () => Promise.reject(new Error("read-only")),
    label: () => Promise.reject(new Error("read-only")),
  };
}

const layer = (n: number) => ({
  mediaType: MediaType.OciLayerGzip,
  digest: `sha256:${String(n).repeat(64)}`,
  size: 1,
});
const diff = (n: number) => `sha256:${String(n + 5).repeat(64)}`;

function manifest(blobs: ReturnType<typeof memoryBlobs>, config: unknown, layers: number): Descriptor {
  const c = blobs.put(config, MediaType.OciConfig);
  const ls = Array.from({ length: layers }, (_, i) => layer(i + 1));
  return blobs.put(
    { schemaVersion: 2, mediaType: MediaType.OciManifest, config: c, layers: ls },
    MediaType.OciManifest,
  );
}

Deno.test("imageRootfs() gives the diff IDs, chain ID and process defaults of the platform's manifest", async () => {
  const blobs = memoryBlobs();
  const amd64 = manifest(blobs, {
    architecture: "amd64",
    os: "linux",
    config: { Cmd: ["sh"], Env: ["A=1"] },
    rootfs: { type: "layers", diff_ids: [diff(1), diff(2)] },
  }, 2);
  const arm64 = manifest(blobs, { rootfs: { type: "layers", diff_ids: [diff(3)] } }, 1);
  const index = blobs.put({
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [
      { ...arm64, platform: { os: "linux", architecture: "arm64" } },
      { ...amd64, platform: { os: "linux", architecture: "amd64" } },
    ],
  }, MediaType.OciIndex);

  const r = await imageRootfs(blobs, index, {
    matcher: platformMatcher([{ os: "linux", architecture: "amd64" }]),
  });
  assert.equal(r.manifest.digest, amd64.digest);
  assert.deepEqual(r.diffIds, [diff(1), diff(2)]);
  // The OCI image spec's ChainID(L0|L1) = sha256(ChainID(L0) + " " + DiffID(L1)).
  assert.equal(r.chainId, digestOf(`${diff(1)} ${diff(2)}`));
  assert.deepEqual(r.imageConfig, { Cmd: ["sh"], Env: ["A=1"] });

  const arm = await imageRootfs(blobs, index, {
    matcher: platformMatcher([{ os: "linux", architecture: "arm64" }]),
  });
  assert.deepEqual(arm.diffIds, [diff(3)]);
  assert.equal(arm.chainId, diff(3));
  assert.deepEqual(arm.imageConfig, {});
});

Deno.test("imageRootfs() reads a manifest without an index, and an image without layers has no chain ID", async () => {
  const blobs = memoryBlobs();
  const m = manifest(blobs, { config: { Cmd: ["true"] } }, 0);
  const r = await imageRootfs(blobs, m, {
    matcher: platformMatcher([{ os: "linux", architecture: "amd64" }]),
  });
  assert.deepEqual(r.diffIds, []);
  assert.equal(r.chainId, "");
});

Deno.test("imageRootfs() names the config that is not JSON or whose diff IDs are not a list", async () => {
  const blobs = memoryBlobs();
  const matcher = platformMatcher([{ os: "linux", architecture: "amd64" }]);
  const notJson = manifest(blobs, "{not json", 0);
  await assert.rejects(
    imageRootfs(blobs, notJson, { matcher }),
    /Image config sha256:[a-f0-9]{64} is malformed: /,
  );
  const notList = manifest(blobs, { rootfs: { diff_ids: "sha256:x" } }, 0);
  await assert.rejects(imageRootfs(blobs, notList, { matcher }), /rootfs\.diff_ids is not a list of digests/);
});

Deno.test("imageRootfs() fails naming the index that has no manifest for the platform", async () => {
  const blobs = memoryBlobs();
  const arm64 = manifest(blobs, { rootfs: { diff_ids: [diff(1)] } }, 1);
  const index = blobs.put({
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [{ ...arm64, platform: { os: "linux", architecture: "arm64" } }],
  }, MediaType.OciIndex);
  await assert.rejects(
    imageRootfs(blobs, index, { matcher: platformMatcher([{ os: "linux", architecture: "amd64" }]) }),
    new RegExp(`Image index ${index.digest} has no manifest for this platform`),
  );
});

Deno.test("imageRootfs() picks this host's platform when no matcher is given", async () => {
  const blobs = memoryBlobs();
  const other = manifest(blobs, { rootfs: { diff_ids: [diff(1)] } }, 1);
  const host = manifest(blobs, { rootfs: { diff_ids: [diff(2)] } }, 1);
  const index = blobs.put({
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [
      { ...other, platform: { os: "plan9", architecture: "mips" } },
      { ...host, platform: hostPlatform() },
    ],
  }, MediaType.OciIndex);
  assert.equal((await imageRootfs(blobs, index)).manifest.digest, host.digest);
});
