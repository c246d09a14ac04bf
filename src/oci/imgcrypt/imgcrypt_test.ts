import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { gzipSync } from "node:zlib";
import type { BlobInfo, BlobStore, BlobWriteOptions } from "../blobs.ts";
import { digestOf } from "../digest_of.ts";
import { type Descriptor, MediaType } from "../image.ts";
import { readBytes } from "../read_bytes.ts";
import {
  ANNOTATION_KEYS_JWE,
  ANNOTATION_PUBOPTS,
  decryptImage,
  encryptImage,
  MediaTypeEnc,
  type NamedKey,
  parsePrivateKey,
  parsePublicKey,
  unwrapLayerOptions,
} from "./mod.ts";

class MemoryBlobs implements BlobStore {
  readonly blobs = new Map<string, Uint8Array>();
  info(digest: string): Promise<BlobInfo | undefined> {
    const b = this.blobs.get(digest);
    return Promise.resolve(b ? { size: b.length, labels: {} } : undefined);
  }
  async *read(digest: string): AsyncIterable<Uint8Array> {
    const b = this.blobs.get(digest);
    if (!b) throw new Error(`no blob ${digest}`);
    // Odd-sized chunks: the cipher must carry partial blocks across them.
    for (let i = 0; i < b.length; i += 1000) yield b.slice(i, i + 1000);
  }
  async write(_ref: string, data: AsyncIterable<Uint8Array>, options: BlobWriteOptions = {}) {
    const parts: Uint8Array[] = [];
    for await (const c of data) parts.push(c);
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) all.set(p, (o += p.length) - p.length);
    const digest = digestOf(all);
    if (options.expected && options.expected !== digest) throw new Error(`digest mismatch ${digest}`);
    this.blobs.set(digest, all);
    return { digest, size: all.length };
  }
  label(): Promise<void> {
    return Promise.resolve();
  }
  put(bytes: Uint8Array): string {
    const d = digestOf(bytes);
    this.blobs.set(d, bytes);
    return d;
  }
}

function keyPair(type: "rsa" | "ec"): { pub: NamedKey; priv: NamedKey } {
  const kp = type === "rsa"
    ? generateKeyPairSync("rsa", { modulusLength: 2048 })
    : generateKeyPairSync("ec", { namedCurve: "P-256" });
  const enc = new TextEncoder();
  return {
    pub: parsePublicKey(
      enc.encode(kp.publicKey.export({ type: "spki", format: "pem" }) as string),
      `${type}.pub`,
    ),
    priv: parsePrivateKey(
      enc.encode(kp.privateKey.export({ type: type === "rsa" ? "pkcs1" : "sec1", format: "pem" }) as string),
      `${type}.pem`,
    ),
  };
}

function image(store: MemoryBlobs): { target: Descriptor; layer: Uint8Array } {
  const layer = gzipSync(new Uint8Array(70_001).map((_, i) => (i * 7919) % 251));
  const ld = store.put(layer);
  const config = new TextEncoder().encode(JSON.stringify({ rootfs: { type: "layers", diff_ids: [] } }));
  const cd = store.put(config);
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: cd, size: config.length },
    layers: [{ mediaType: MediaType.OciLayerGzip, digest: ld, size: layer.length }],
  }));
  const md = store.put(manifest);
  return { target: { mediaType: MediaType.OciManifest, digest: md, size: manifest.length }, layer };
}

async function encryptedLayer(store: MemoryBlobs, target: Descriptor): Promise<Descriptor> {
  const m = JSON.parse(new TextDecoder().decode(await readBytes(store, target.digest)));
  return m.layers[0];
}

for (const type of ["rsa", "ec"] as const) {
  Deno.test(`encryptImage() and decryptImage() round-trip a layer for a ${type} recipient`, async () => {
    const store = new MemoryBlobs();
    const { target, layer } = image(store);
    const { pub, priv } = keyPair(type);
    const enc = await encryptImage(store, target, { recipients: [pub] });
    const el = await encryptedLayer(store, enc);
    assert.equal(el.mediaType, MediaTypeEnc.LayerGzip);
    assert.ok(el.annotations?.[ANNOTATION_KEYS_JWE] && el.annotations[ANNOTATION_PUBOPTS]);
    assert.notDeepEqual(await readBytes(store, el.digest), layer);
    const dec = await decryptImage(store, enc, { keys: [priv] });
    const pl = await encryptedLayer(store, dec);
    assert.equal(pl.mediaType, MediaType.OciLayerGzip);
    assert.equal(pl.digest, digestOf(layer));
    assert.equal(pl.annotations, undefined);
  });
}

Deno.test("unwrapLayerOptions() names the missing key, the wrong key and the missing annotation", async () => {
  const store = new MemoryBlobs();
  const { target } = image(store);
  const { pub } = keyPair("rsa");
  const other = keyPair("rsa");
  const el = await encryptedLayer(store, await encryptImage(store, target, { recipients: [pub] }));
  await assert.rejects(unwrapLayerOptions(el, []), /missing private key needed for decryption/);
  await assert.rejects(
    unwrapLayerOptions(el, [other.priv]),
    /none of the private keys \(rsa\.pem\) can unwrap/,
  );
  const bare = { ...el, annotations: { [ANNOTATION_PUBOPTS]: el.annotations![ANNOTATION_PUBOPTS]! } };
  await assert.rejects(
    unwrapLayerOptions(bare, [other.priv]),
    /has no org\.opencontainers\.image\.enc\.keys\.jwe/,
  );
});

Deno.test("decryptImage() refuses a layer whose ciphertext was tampered with and writes no plain blob", async () => {
  const store = new MemoryBlobs();
  const { target, layer } = image(store);
  const { pub, priv } = keyPair("rsa");
  const enc = await encryptImage(store, target, { recipients: [pub] });
  const el = await encryptedLayer(store, enc);
  const cipher = store.blobs.get(el.digest)!;
  cipher[cipher.length >> 1]! ^= 1;
  await assert.rejects(decryptImage(store, enc, { keys: [priv] }), /HMAC mismatch/);
  assert.equal(store.blobs.has(digestOf(layer)), true, "the original is still there");
  const before = store.blobs.size;
  store.blobs.delete(digestOf(layer));
  await assert.rejects(decryptImage(store, enc, { keys: [priv] }), /HMAC mismatch/);
  assert.equal(store.blobs.size, before - 1);
});
