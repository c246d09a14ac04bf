/**
 * AES-256-CTR and HMAC-SHA256 over streams of chunks, for the layer cipher of encrypted images: in
 * OpenSSL's libcrypto where it loads (ffi/libcrypto.ts: AES-NI at ~8 GB/s here, the MAC on Deno's
 * blocking pool), else in Deno: AES-CTR in Web Crypto (~0.6 GB/s, ~2× node:crypto's decipher here), one
 * call per chunk with the counter advanced to its offset since Web Crypto does not stream, and
 * node:crypto's streaming HMAC.
 */
import { hasLibcrypto, LibcryptoAesCtr, LibcryptoHmacSha256 } from "../../ffi/libcrypto.ts";
import { nodeCrypto } from "./node_crypto.ts";

const BLOCK = 16;

/** The initial counter block advanced by `blocks` (a 128-bit big-endian add). */
function counterAt(nonce: Uint8Array, blocks: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(BLOCK);
  out.set(nonce);
  let carry = blocks;
  for (let i = BLOCK - 1; i >= 0 && carry > 0; i--) {
    const sum = out[i]! + (carry % 256);
    out[i] = sum & 0xff;
    carry = Math.floor(carry / 256) + (sum >> 8);
  }
  return out;
}

/** AES-256-CTR over a stream of chunks (encrypting and decrypting are one operation). */
export interface StreamCipher {
  /** With `inPlace`, the result may be written over `chunk` (libcrypto does; Web Crypto cannot). */
  update(chunk: Uint8Array, inPlace?: boolean): Uint8Array | Promise<Uint8Array>;
  /** What is left of an incomplete last block. */
  final(): Promise<Uint8Array>;
  close(): void;
}

/** HMAC-SHA256 over a stream of chunks. */
export interface StreamMac {
  update(chunk: Uint8Array): void;
  /** The MAC; ends the stream. */
  digest(): Uint8Array | Promise<Uint8Array>;
  close(): void;
}

/** Which implementation runs the cipher: libcrypto where it loads (the default), or Deno's own. */
export type CipherEngine = "libcrypto" | "deno";

export function defaultEngine(): CipherEngine {
  return hasLibcrypto() ? "libcrypto" : "deno";
}

export function openAesCtr(key: Uint8Array, nonce: Uint8Array, engine: CipherEngine): StreamCipher {
  const native = engine === "libcrypto" ? LibcryptoAesCtr.open(key, nonce) : undefined;
  if (engine === "libcrypto" && !native) throw new Error("libcrypto cannot be loaded in this process");
  if (!native) return new WebCryptoCtr(key, nonce);
  return {
    update: (chunk, inPlace) => native.update(chunk, { inPlace }),
    final: () => Promise.resolve(new Uint8Array(0)),
    close: () => native.close(),
  };
}

export function openHmacSha256(key: Uint8Array, engine: CipherEngine): StreamMac {
  const native = engine === "libcrypto" ? LibcryptoHmacSha256.open(key) : undefined;
  if (engine === "libcrypto" && !native) throw new Error("libcrypto cannot be loaded in this process");
  if (native) return native;
  const hmac = nodeCrypto().createHmac("sha256", key);
  return {
    update: (chunk) => void hmac.update(chunk),
    digest: () => new Uint8Array(hmac.digest()),
    close() {},
  };
}

/**
 * The chunks with small ones joined into chunks of at least `min` bytes: a Web Crypto call costs ~30 µs
 * whatever its size, and a download's chunks can be a few KiB (a libcrypto call costs ~1 µs).
 */
export async function* batched(
  chunks: AsyncIterable<Uint8Array>,
  min = BATCH_BYTES,
): AsyncIterable<Uint8Array> {
  let pending: Uint8Array[] = [];
  let size = 0;
  const take = () => {
    const out = pending.length === 1 ? pending[0]! : new Uint8Array(size);
    if (pending.length > 1) {
      let at = 0;
      for (const c of pending) {
        out.set(c, at);
        at += c.length;
      }
    }
    pending = [];
    size = 0;
    return out;
  };
  for await (const chunk of chunks) {
    if (chunk.length === 0) continue;
    if (size === 0 && chunk.length >= min) {
      yield chunk;
      continue;
    }
    pending.push(chunk);
    size += chunk.length;
    if (size >= min) yield take();
  }
  if (size > 0) yield take();
}

/** The smallest input of one cipher call (larger chunks go as they come). */
const BATCH_BYTES = 64 << 10;

/**
 * AES-256-CTR in Web Crypto, where libcrypto cannot be loaded: the keystream continues across chunk
 * boundaries.
 */
class WebCryptoCtr implements StreamCipher {
  readonly #key: Promise<CryptoKey>;
  readonly #nonce: Uint8Array;
  #blocks = 0;
  /** Bytes of an incomplete block carried to the next chunk (so every call starts on a block). */
  #carry = new Uint8Array(0);

  constructor(key: Uint8Array, nonce: Uint8Array) {
    this.#key = crypto.subtle.importKey("raw", key.slice(), "AES-CTR", false, ["encrypt"]);
    this.#nonce = nonce;
  }

  async update(chunk: Uint8Array): Promise<Uint8Array> {
    let data = chunk;
    if (this.#carry.length > 0) {
      data = new Uint8Array(this.#carry.length + chunk.length);
      data.set(this.#carry);
      data.set(chunk, this.#carry.length);
    }
    const whole = data.length - (data.length % BLOCK);
    this.#carry = data.slice(whole);
    return await this.#run(data.subarray(0, whole));
  }

  async final(): Promise<Uint8Array> {
    const rest = this.#carry;
    this.#carry = new Uint8Array(0);
    return await this.#run(rest);
  }

  async #run(data: Uint8Array): Promise<Uint8Array> {
    if (data.length === 0) return new Uint8Array(0);
    const counter = counterAt(this.#nonce, this.#blocks);
    this.#blocks += Math.ceil(data.length / BLOCK);
    const out = await crypto.subtle.encrypt(
      { name: "AES-CTR", counter, length: 128 },
      await this.#key,
      data as Uint8Array<ArrayBuffer>,
    );
    return new Uint8Array(out);
  }

  close(): void {}
}
