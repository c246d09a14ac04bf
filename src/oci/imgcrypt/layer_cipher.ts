/**
 * ocicrypt's one layer cipher, AES_256_CTR_HMAC_SHA256 (blockcipher/blockcipher_aes_ctr.go): AES-256 in
 * CTR mode with a random 16-byte nonce as the initial counter block (the whole block counts, Go's
 * cipher.NewCTR), then HMAC-SHA256 keyed with the same symmetric key over the whole ciphertext.
 * Both run in OpenSSL's libcrypto where it loads, else in Deno (base/stream_cipher.ts).
 */
import { nodeCrypto } from "../../base/node_crypto.ts";
import { failedPrecondition, invalidArgument } from "../../base/errors.ts";
import {
  batched,
  type CipherEngine,
  defaultEngine,
  openAesCtr,
  openHmacSha256,
} from "../../base/stream_cipher.ts";
import { CIPHER_AES256_CTR } from "./spec.ts";

export type { CipherEngine };

export const SYMMETRIC_KEY_BYTES = 32;
const BLOCK = 16;

/** What ocicrypt keeps private (wrapped for the recipients): PrivateLayerBlockCipherOptions. */
export interface PrivateLayerOptions {
  readonly symmetricKey: Uint8Array;
  /** Digest of the plain (possibly compressed) layer blob. */
  readonly digest: string;
  readonly nonce: Uint8Array;
}

/** What ocicrypt publishes in the pubopts annotation: PublicLayerBlockCipherOptions. */
export interface PublicLayerOptions {
  readonly cipher: string;
  readonly hmac: Uint8Array;
}

export interface LayerCipherOptions {
  readonly private: PrivateLayerOptions;
  readonly public: PublicLayerOptions;
}

const b64 = (b: Uint8Array) => btoa(String.fromCharCode(...b));
function unb64(s: unknown, what: string): Uint8Array {
  if (typeof s !== "string") {
    throw invalidArgument(`Malformed ocicrypt options: ${what} is not a base64 string`);
  }
  try {
    return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  } catch {
    throw invalidArgument(`Malformed ocicrypt options: ${what} is not valid base64`);
  }
}

/** Go's json.Marshal of PrivateLayerBlockCipherOptions (field order, []byte as standard base64). */
export function encodePrivateOptions(o: PrivateLayerOptions): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({
    symkey: b64(o.symmetricKey),
    digest: o.digest,
    cipheroptions: { nonce: b64(o.nonce) },
  }));
}

/** Go's json.Marshal of PublicLayerBlockCipherOptions after the finalizer (empty public cipher options). */
export function encodePublicOptions(o: PublicLayerOptions): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ cipher: o.cipher, hmac: b64(o.hmac), cipheroptions: {} }));
}

function parseJson(data: Uint8Array, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(new TextDecoder().decode(data));
    if (v && typeof v === "object" && !Array.isArray(v)) return v;
  } catch { /* reported below */ }
  throw invalidArgument(`Malformed ocicrypt ${what}: not a JSON object`);
}

/**
 * Both option sets, as ocicrypt's commonDecryptLayer reads them: the nonce is looked up in the public
 * cipher options first, then the private ones (LayerBlockCipherOptions.GetOpt).
 */
export function decodeLayerOptions(privateData: Uint8Array, publicData: Uint8Array): LayerCipherOptions {
  const priv = parseJson(privateData, "private options");
  const pub = parseJson(publicData, "public options");
  const privOpts = (priv.cipheroptions ?? {}) as Record<string, unknown>;
  const pubOpts = (pub.cipheroptions ?? {}) as Record<string, unknown>;
  const nonceB64 = pubOpts.nonce ?? privOpts.nonce;
  const cipher = typeof pub.cipher === "string" ? pub.cipher : "";
  if (cipher === "") throw invalidArgument("Malformed ocicrypt public options: no cipher type provided");
  if (cipher !== CIPHER_AES256_CTR) throw invalidArgument(`Unsupported ocicrypt cipher type "${cipher}"`);
  const symmetricKey = unb64(priv.symkey, "symkey");
  if (symmetricKey.length !== SYMMETRIC_KEY_BYTES) {
    throw invalidArgument(
      `Malformed ocicrypt options: invalid key length of ${symmetricKey.length} bytes; need ${SYMMETRIC_KEY_BYTES}`,
    );
  }
  const nonce = unb64(nonceB64, "nonce");
  if (nonce.length !== BLOCK) {
    throw invalidArgument(`Malformed ocicrypt options: the nonce is not ${BLOCK} bytes`);
  }
  const hmac = pub.hmac === undefined || pub.hmac === null ? new Uint8Array() : unb64(pub.hmac, "hmac");
  if (hmac.length === 0) throw invalidArgument("Malformed ocicrypt public options: HMAC is not provided");
  return {
    private: { symmetricKey, nonce, digest: typeof priv.digest === "string" ? priv.digest : "" },
    public: { cipher, hmac },
  };
}

export interface EncryptedLayer {
  /** The ciphertext, as it is produced from the plain stream. */
  readonly stream: AsyncIterable<Uint8Array>;
  /** Once `stream` is read to its end: the options to wrap and publish. */
  finalize(): LayerCipherOptions;
}

/**
 * Encrypts a plain layer blob with a fresh key and nonce (ocicrypt's EncryptLayer); `digest` is the
 * plain blob's, recorded in the private options for the decrypting side to check.
 */
export function encryptLayerStream(
  plain: AsyncIterable<Uint8Array>,
  digest: string,
  engine: CipherEngine = defaultEngine(),
): EncryptedLayer {
  const symmetricKey = crypto.getRandomValues(new Uint8Array(SYMMETRIC_KEY_BYTES));
  const nonce = crypto.getRandomValues(new Uint8Array(BLOCK));
  let done: Uint8Array | undefined;
  async function* run(): AsyncIterable<Uint8Array> {
    const ctr = openAesCtr(symmetricKey, nonce, engine);
    const hmac = openHmacSha256(symmetricKey, engine);
    try {
      for await (const chunk of engine === "deno" ? batched(plain) : plain) {
        const out = await ctr.update(chunk);
        if (out.length > 0) {
          hmac.update(out);
          yield out;
        }
      }
      const last = await ctr.final();
      hmac.update(last);
      done = await hmac.digest();
      if (last.length > 0) yield last;
    } finally {
      ctr.close();
      hmac.close();
    }
  }
  return {
    stream: run(),
    finalize() {
      if (!done) {
        throw invalidArgument("Cannot finalize layer encryption: the ciphertext was not read to its end");
      }
      return {
        private: { symmetricKey, nonce, digest },
        public: { cipher: CIPHER_AES256_CTR, hmac: done },
      };
    },
  };
}

function checkHmac(got: Uint8Array, opts: LayerCipherOptions, what: string): void {
  const want = opts.public.hmac;
  if (got.length !== want.length || !nodeCrypto().timingSafeEqual(got, want)) {
    throw failedPrecondition(
      `Cannot decrypt ${what}: HMAC mismatch, the ciphertext or its pubopts annotation was tampered with`,
    );
  }
}

/**
 * Reads the whole ciphertext and checks its HMAC, decrypting nothing: what the unpacker runs before a
 * single byte is applied (ocicrypt's own reader only knows the verdict at the end of the stream).
 */
export async function verifyLayerHmac(
  cipher: AsyncIterable<Uint8Array>,
  opts: LayerCipherOptions,
  what: string,
  engine: CipherEngine = defaultEngine(),
): Promise<void> {
  const hmac = openHmacSha256(opts.private.symmetricKey, engine);
  try {
    for await (const chunk of cipher) hmac.update(chunk);
    checkHmac(await hmac.digest(), opts, what);
  } finally {
    hmac.close();
  }
}

/**
 * The plain layer from its ciphertext. With `verify`, the HMAC is also computed and a mismatch fails the
 * stream at its end, before its last chunk is given out (so a store write that consumes it commits
 * nothing); without, the caller has verified the same bytes already (verifyLayerHmac).
 */
export async function* decryptLayerStream(
  cipher: AsyncIterable<Uint8Array>,
  opts: LayerCipherOptions,
  options: {
    verify: boolean;
    what: string;
    engine?: CipherEngine;
    /** The chunks are the caller's to overwrite: decrypted in place, without a copy to collect. */
    inPlace?: boolean;
  },
): AsyncIterable<Uint8Array> {
  const engine = options.engine ?? defaultEngine();
  const ctr = openAesCtr(opts.private.symmetricKey, opts.private.nonce, engine);
  const hmac = options.verify ? openHmacSha256(opts.private.symmetricKey, engine) : undefined;
  try {
    let held: Uint8Array | undefined;
    for await (const chunk of engine === "deno" ? batched(cipher) : cipher) {
      hmac?.update(chunk);
      const out = await ctr.update(chunk, options.inPlace);
      if (held && held.length > 0) yield held;
      held = out;
    }
    const last = await ctr.final();
    if (hmac) checkHmac(await hmac.digest(), opts, options.what);
    if (held && held.length > 0) yield held;
    if (last.length > 0) yield last;
  } finally {
    ctr.close();
    hmac?.close();
  }
}
