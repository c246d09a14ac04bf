/**
 * OpenSSL's libcrypto for the message digests of content (SHA-256 of every blob written and every layer
 * unpacked) and for bulk AES-256-CTR and HMAC-SHA256: the layer cipher of encrypted images. Deno's
 * own AES-CTR (Web Crypto) runs at ~0.6 GB/s and node:crypto's at ~0.4 GB/s, where libcrypto's AES-NI code
 * runs at ~8 GB/s here. AES calls are synchronous (~25 ms of a 200 MB layer): a `nonblocking` call (on
 * Deno's blocking pool) costs the event loop ~50-90 µs in Deno's op, about what 256 KiB of AES costs. The
 * HMAC, ~4× slower, goes to the pool in 1 MiB batches.
 *
 * libssl3 is on nearly every Debian-like host (systemd, curl and openssh depend on it); where it is not,
 * the open functions return undefined and callers use Deno's implementations.
 */
import { lazySymbols } from "./lazy_symbols.ts";

const SYMBOLS = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_aes_256_ctr: { parameters: [], result: "pointer" },
  EVP_CipherInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_CipherUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_sha256: { parameters: [], result: "pointer" },
  HMAC_CTX_new: { parameters: [], result: "pointer" },
  HMAC_CTX_free: { parameters: ["pointer"], result: "void" },
  HMAC_Init_ex: { parameters: ["pointer", "buffer", "i32", "pointer", "pointer"], result: "i32" },
  HMAC_Update_nonblocking: {
    name: "HMAC_Update",
    parameters: ["pointer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  HMAC_Final: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_get_digestbyname: { parameters: ["buffer"], result: "pointer" },
  EVP_MD_CTX_new: { parameters: [], result: "pointer" },
  EVP_MD_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_MD_CTX_copy_ex: { parameters: ["pointer", "pointer"], result: "i32" },
  EVP_DigestInit_ex: { parameters: ["pointer", "pointer", "pointer"], result: "i32" },
  EVP_DigestUpdate: { parameters: ["pointer", "buffer", "usize"], result: "i32" },
  EVP_DigestFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** OpenSSL 3, then 1.1: both export every symbol above. */
const LIBRARIES = ["libcrypto.so.3", "libcrypto.so.1.1"];

/**
 * The largest input of one call: EVP_CipherUpdate takes an int length. Callers pass chunks far below it.
 */
const MAX_CALL_BYTES = 1 << 30;

/** Bytes of MAC input handed to the pool per call. */
const HMAC_BATCH_BYTES = 1 << 20;

/** Batches kept for reuse; more are made while the pool lags behind. */
const SPARE_BATCHES = 4;

let opened: Symbols | null | undefined;

/** libcrypto's symbols, each bound on first use; undefined when no libcrypto can be loaded here. */
function symbols(): Symbols | undefined {
  if (opened === undefined) {
    opened = null;
    for (const name of LIBRARIES) {
      try {
        Deno.dlopen(name, { EVP_sha256: SYMBOLS.EVP_sha256 }).close();
        opened = lazySymbols(SYMBOLS, name);
        break;
      } catch { /* the next name, or none */ }
    }
  }
  return opened ?? undefined;
}

/** Whether libcrypto can be loaded in this process. */
export function hasLibcrypto(): boolean {
  return symbols() !== undefined;
}

/** Whether this process has loaded libcrypto (without loading it). */
export function libcryptoLoaded(): boolean {
  return opened !== undefined && opened !== null;
}

/** Whether a mapped file is a libcrypto this module may load (for smaps readers). */
export function isLibcryptoPath(path: string): boolean {
  return LIBRARIES.some((name) => path.endsWith(`/${name}`));
}

function outParam(): Int32Array<ArrayBuffer> {
  return new Int32Array(1);
}

function checkLength(input: Uint8Array): void {
  if (input.length > MAX_CALL_BYTES) {
    throw new RangeError(
      `Cannot pass ${input.length} bytes to libcrypto in one call (at most ${MAX_CALL_BYTES})`,
    );
  }
}

/**
 * AES-256-CTR over a stream (encryption and decryption are the same operation): the counter and any
 * partial block carry across calls inside OpenSSL. One call at a time; close() frees the context.
 */
export class LibcryptoAesCtr {
  readonly #lib: Symbols;
  #ctx: Deno.PointerValue;
  readonly #outLength = outParam();

  private constructor(lib: Symbols, ctx: Deno.PointerObject) {
    this.#lib = lib;
    this.#ctx = ctx;
  }

  /** A cipher for a 32-byte key and 16-byte initial counter block; undefined without libcrypto. */
  static open(key: Uint8Array, iv: Uint8Array): LibcryptoAesCtr | undefined {
    if (key.length !== 32 || iv.length !== 16) {
      throw new RangeError(
        `AES-256-CTR needs a 32-byte key and a 16-byte IV, not ${key.length} and ${iv.length}`,
      );
    }
    const lib = symbols();
    if (!lib) return undefined;
    const ctx = lib.EVP_CIPHER_CTX_new();
    if (ctx === null) throw new Error("Cannot allocate an OpenSSL cipher context (EVP_CIPHER_CTX_new)");
    if (lib.EVP_CipherInit_ex(ctx, lib.EVP_aes_256_ctr(), null, key.slice(), iv.slice(), 1) !== 1) {
      lib.EVP_CIPHER_CTX_free(ctx);
      throw new Error("Cannot initialise OpenSSL's AES-256-CTR (EVP_CipherInit_ex)");
    }
    return new LibcryptoAesCtr(lib, ctx);
  }

  /**
   * `input` run through the cipher, into a new array of the same length or, with `inPlace`, into `input`
   * itself (returned).
   */
  update(input: Uint8Array, options: { inPlace?: boolean } = {}): Uint8Array {
    if (this.#ctx === null) throw new Error("The AES-256-CTR context is closed");
    checkLength(input);
    const out = options.inPlace ? input as Uint8Array<ArrayBuffer> : new Uint8Array(input.length);
    if (input.length === 0) return out;
    const ok = this.#lib.EVP_CipherUpdate(
      this.#ctx,
      out,
      this.#outLength,
      input as Uint8Array<ArrayBuffer>,
      input.length,
    );
    if (ok !== 1 || this.#outLength[0] !== input.length) {
      throw new Error(`OpenSSL's AES-256-CTR failed on ${input.length} bytes (EVP_CipherUpdate)`);
    }
    return out;
  }

  /** Frees the context. */
  close(): void {
    if (this.#ctx === null) return;
    this.#lib.EVP_CIPHER_CTX_free(this.#ctx);
    this.#ctx = null;
  }
}

/**
 * HMAC-SHA256 over a stream, computed on Deno's blocking pool: update() copies its input into a 1 MiB
 * batch and hands each full batch to a nonblocking HMAC_Update, chained after the one before, so the MAC
 * (SHA-256 runs at ~1.9 GB/s here: ~110 ms of a 200 MB layer) overlaps the caller's other work. A
 * nonblocking call costs the event loop ~50-90 µs; per 1 MiB that is a few percent of the work it moves.
 */
export class LibcryptoHmacSha256 {
  readonly #lib: Symbols;
  #ctx: Deno.PointerValue;
  #batch: Uint8Array<ArrayBuffer> = new Uint8Array(HMAC_BATCH_BYTES);
  #filled = 0;
  /** Batches whose call has returned, for reuse: a fresh 1 MiB per batch is garbage V8 must collect. */
  readonly #spare: Uint8Array<ArrayBuffer>[] = [];
  /** The last background update, settled once it and all before it ran. */
  #chain: Promise<void> = Promise.resolve();
  #failure: Error | undefined;

  private constructor(lib: Symbols, ctx: Deno.PointerObject) {
    this.#lib = lib;
    this.#ctx = ctx;
  }

  /** An HMAC-SHA256 keyed with `key`; undefined without libcrypto. */
  static open(key: Uint8Array): LibcryptoHmacSha256 | undefined {
    const lib = symbols();
    if (!lib) return undefined;
    const ctx = lib.HMAC_CTX_new();
    if (ctx === null) throw new Error("Cannot allocate an OpenSSL HMAC context (HMAC_CTX_new)");
    if (lib.HMAC_Init_ex(ctx, key.slice(), key.length, lib.EVP_sha256(), null) !== 1) {
      lib.HMAC_CTX_free(ctx);
      throw new Error("Cannot initialise OpenSSL's HMAC-SHA256 (HMAC_Init_ex)");
    }
    return new LibcryptoHmacSha256(lib, ctx);
  }

  /** Adds `input` to the MAC (copied: the caller may reuse it at once). */
  update(input: Uint8Array): void {
    if (this.#ctx === null) throw new Error("The HMAC-SHA256 context is closed");
    let at = 0;
    while (at < input.length) {
      const n = Math.min(input.length - at, this.#batch.length - this.#filled);
      this.#batch.set(input.subarray(at, at + n), this.#filled);
      this.#filled += n;
      at += n;
      if (this.#filled === this.#batch.length) this.#dispatch();
    }
  }

  /** The 32-byte MAC, once every batch has run; frees the context. */
  async digest(): Promise<Uint8Array> {
    if (this.#ctx === null) throw new Error("The HMAC-SHA256 context is closed");
    this.#dispatch();
    await this.#chain;
    if (this.#failure) {
      this.close();
      throw this.#failure;
    }
    const mac = new Uint8Array(32);
    const length = outParam();
    const ok = this.#lib.HMAC_Final(this.#ctx!, mac, length);
    this.close();
    if (ok !== 1 || length[0] !== 32) throw new Error("OpenSSL's HMAC-SHA256 failed to finish (HMAC_Final)");
    return mac;
  }

  /** Frees the context without a digest, once no background update runs on it. */
  close(): void {
    const ctx = this.#ctx;
    if (ctx === null) return;
    this.#ctx = null;
    void this.#chain.then(() => this.#lib.HMAC_CTX_free(ctx));
  }

  /**
   * Hands the batch to the pool. The batch stays referenced by the closure until its call returns, and
   * is 1 MiB, so outside V8's heap: the collector neither frees nor moves it under the call.
   */
  #dispatch(): void {
    if (this.#filled === 0) return;
    const full = this.#batch;
    const length = this.#filled;
    const ctx = this.#ctx!;
    this.#batch = this.#spare.pop() ?? new Uint8Array(HMAC_BATCH_BYTES);
    this.#filled = 0;
    this.#chain = this.#chain.then(async () => {
      if (this.#failure) return;
      const ok = await this.#lib.HMAC_Update_nonblocking(ctx, full, BigInt(length));
      if (ok !== 1) {
        this.#failure = new Error(`OpenSSL's HMAC-SHA256 failed on ${length} bytes (HMAC_Update)`);
      }
      if (this.#spare.length < SPARE_BATCHES) this.#spare.push(full);
    });
  }
}

/** EVP_MAX_MD_SIZE: the longest digest libcrypto writes (SHA-512). */
const MAX_DIGEST_BYTES = 64;

/** Frees the context of a digest dropped without close() (a writer abandoned mid-ingest). */
const digestContexts = new FinalizationRegistry<{ lib: Symbols; ctx: Deno.PointerObject }>(
  ({ lib, ctx }) => lib.EVP_MD_CTX_free(ctx),
);

/**
 * An incremental message digest (sha256, sha384, sha512) whose running value can be read at any time.
 * It runs synchronously, as node:crypto's Hash does and as fast (~1.9 GB/s SHA-256 here), without
 * loading Deno's node-compat layer (~20 ms of a fresh daemon's first content write).
 */
export class LibcryptoDigest {
  readonly #lib: Symbols;
  readonly #md: Deno.PointerObject;
  #ctx: Deno.PointerObject | null;
  readonly #token = {};

  private constructor(lib: Symbols, md: Deno.PointerObject, ctx: Deno.PointerObject) {
    this.#lib = lib;
    this.#md = md;
    this.#ctx = ctx;
    digestContexts.register(this, { lib, ctx }, this.#token);
  }

  /** A digest of `algorithm`; undefined without libcrypto or when it does not know the name. */
  static open(algorithm: string): LibcryptoDigest | undefined {
    const lib = symbols();
    if (!lib) return undefined;
    const md = lib.EVP_get_digestbyname(new TextEncoder().encode(`${algorithm}\0`));
    if (md === null) return undefined;
    const ctx = lib.EVP_MD_CTX_new();
    if (ctx === null) throw new Error("Cannot allocate an OpenSSL digest context (EVP_MD_CTX_new)");
    if (lib.EVP_DigestInit_ex(ctx, md, null) !== 1) {
      lib.EVP_MD_CTX_free(ctx);
      throw new Error(`Cannot initialise OpenSSL's ${algorithm} (EVP_DigestInit_ex)`);
    }
    return new LibcryptoDigest(lib, md, ctx);
  }

  update(input: Uint8Array): void {
    const ctx = this.#open();
    if (input.length === 0) return;
    if (this.#lib.EVP_DigestUpdate(ctx, input as Uint8Array<ArrayBuffer>, BigInt(input.length)) !== 1) {
      throw new Error(`OpenSSL's digest failed on ${input.length} bytes (EVP_DigestUpdate)`);
    }
  }

  /** The digest of everything so far; the digest goes on (a copy of the state is finished). */
  digest(): Uint8Array {
    const ctx = this.#open();
    const copy = this.#lib.EVP_MD_CTX_new();
    if (copy === null) throw new Error("Cannot allocate an OpenSSL digest context (EVP_MD_CTX_new)");
    try {
      const out = new Uint8Array(MAX_DIGEST_BYTES);
      const length = outParam();
      if (
        this.#lib.EVP_MD_CTX_copy_ex(copy, ctx) !== 1 ||
        this.#lib.EVP_DigestFinal_ex(copy, out, length) !== 1
      ) {
        throw new Error("OpenSSL's digest failed to finish (EVP_DigestFinal_ex)");
      }
      return out.slice(0, length[0]);
    } finally {
      this.#lib.EVP_MD_CTX_free(copy);
    }
  }

  /** Starts over, as a new digest of the same algorithm. */
  reset(): void {
    if (this.#lib.EVP_DigestInit_ex(this.#open(), this.#md, null) !== 1) {
      throw new Error("Cannot reset OpenSSL's digest (EVP_DigestInit_ex)");
    }
  }

  /** Frees the context. */
  close(): void {
    if (this.#ctx === null) return;
    digestContexts.unregister(this.#token);
    this.#lib.EVP_MD_CTX_free(this.#ctx);
    this.#ctx = null;
  }

  #open(): Deno.PointerObject {
    if (this.#ctx === null) throw new Error("The digest context is closed");
    return this.#ctx;
  }
}
