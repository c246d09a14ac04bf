import assert from "node:assert/strict";
import { createCipheriv, createHmac } from "node:crypto";
import { hasLibcrypto } from "../../../ffi/libcrypto.ts";
import {
  type CipherEngine,
  decryptLayerStream,
  encryptLayerStream,
  verifyLayerHmac,
} from "./layer_cipher.ts";

const engines: CipherEngine[] = hasLibcrypto() ? ["libcrypto", "deno"] : ["deno"];

/** Deterministic bytes, cut into chunks of the given sizes in turn (odd sizes: partial AES blocks). */
function chunked(data: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(data.slice(at, at + n));
    at += n;
  }
  return out;
}

async function* from(chunks: readonly Uint8Array[]): AsyncIterable<Uint8Array> {
  for (const c of chunks) yield c;
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c.slice());
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function sample(bytes: number): Uint8Array {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 2654435761) >>> 24;
  return data;
}

// 3 MiB and a bit: several of libcrypto's 1 MiB MAC batches, and a last block of 5 bytes.
const PLAIN = sample((3 << 20) + 37);
const SIZES = [1000, 65536, 7, 300_000, 16, 1 << 20];

for (const engine of engines) {
  Deno.test(`layer cipher (${engine}): ciphertext and HMAC are ocicrypt's AES-256-CTR and HMAC-SHA256`, async () => {
    const enc = encryptLayerStream(from(chunked(PLAIN, SIZES)), "sha256:plain", engine);
    const cipher = await collect(enc.stream);
    const opts = enc.finalize();
    // The reference: node:crypto over the whole buffer at once.
    const { symmetricKey, nonce } = opts.private;
    const want = createCipheriv("aes-256-ctr", symmetricKey, nonce).update(PLAIN);
    assert.deepEqual(cipher, new Uint8Array(want));
    assert.deepEqual(
      opts.public.hmac,
      new Uint8Array(createHmac("sha256", symmetricKey).update(want).digest()),
    );

    for (const inPlace of [false, true]) {
      const chunks = chunked(cipher, [...SIZES].reverse());
      const plain = await collect(
        decryptLayerStream(from(chunks), opts, { verify: true, what: "layer", engine, inPlace }),
      );
      assert.deepEqual(plain, PLAIN);
      // Out of place, the caller's chunks are left as they were.
      if (!inPlace) assert.deepEqual(await collect(from(chunks)), cipher);
    }
    await verifyLayerHmac(from(chunked(cipher, SIZES)), opts, "layer", engine);
  });

  Deno.test(`layer cipher (${engine}): a flipped byte fails the HMAC before the last chunk is given out`, async () => {
    const enc = encryptLayerStream(from([PLAIN]), "sha256:plain", engine);
    const cipher = await collect(enc.stream);
    const opts = enc.finalize();
    cipher[100] = cipher[100]! ^ 1;
    const chunks = chunked(cipher, [1 << 20]);
    let given = 0;
    await assert.rejects(async () => {
      for await (
        const c of decryptLayerStream(from(chunks), opts, { verify: true, what: "layer x", engine })
      ) {
        given += c.length;
      }
    }, /Cannot decrypt layer x: HMAC mismatch/);
    assert.ok(given < PLAIN.length, `${given} of ${PLAIN.length} bytes were given out before the HMAC check`);
    await assert.rejects(verifyLayerHmac(from(chunks), opts, "layer x", engine), /HMAC mismatch/);
  });

  Deno.test(`layer cipher (${engine}): a reader that stops early frees the cipher and the MAC`, async () => {
    const enc = encryptLayerStream(from([PLAIN]), "sha256:plain", engine);
    const cipher = await collect(enc.stream);
    const opts = enc.finalize();
    for (let i = 0; i < 50; i++) {
      // Stops after the first chunk, while MAC batches may still be running in the pool.
      for await (
        const _ of decryptLayerStream(from(chunked(cipher, [(1 << 20) + 3])), opts, {
          verify: true,
          what: "layer",
          engine,
        })
      ) break;
    }
    // Whatever was pending has run its course on contexts that were still alive: a decrypt works.
    const plain = await collect(
      decryptLayerStream(from([cipher]), opts, { verify: true, what: "layer", engine }),
    );
    assert.deepEqual(plain, PLAIN);
  });
}

Deno.test(
  "layer cipher: both engines read each other's ciphertext",
  { ignore: engines.length < 2 },
  async () => {
    for (const [a, b] of [["libcrypto", "deno"], ["deno", "libcrypto"]] as const) {
      const enc = encryptLayerStream(from(chunked(PLAIN, SIZES)), "sha256:plain", a);
      const cipher = await collect(enc.stream);
      const plain = await collect(
        decryptLayerStream(from([cipher]), enc.finalize(), { verify: true, what: "layer", engine: b }),
      );
      assert.deepEqual(plain, PLAIN);
    }
  },
);
