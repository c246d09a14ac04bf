/**
 * SHA-2 without node:crypto, which costs a process ~17-23 ms to load with node-compat before its first
 * hash (measured: a fresh daemon's first content write). Small things (names, ids, chain IDs) hash in
 * @noble/hashes; streams of content (blobs, layers) in libcrypto (ffi/libcrypto.ts), as fast as
 * node:crypto, which remains the fallback on a host without libcrypto.
 */
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { LibcryptoDigest } from "../../ffi/libcrypto.ts";
import { nodeCrypto } from "./node_crypto.ts";

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

const asBytes = (data: Uint8Array | string) =>
  typeof data === "string" ? new TextEncoder().encode(data) : data;

/** The hex SHA-256 of `data`, by Web Crypto (asynchronous; for bytes of any size). */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = asBytes(data) as Uint8Array<ArrayBuffer>;
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/** The hex SHA-256 of a short string or byte string, synchronously (@noble/hashes). */
export function sha256HexSync(data: Uint8Array | string): string {
  return toHex(sha256(asBytes(data)));
}

/** The hex SHA-512 of a short string or byte string, synchronously (@noble/hashes). */
export function sha512HexSync(data: Uint8Array | string): string {
  return toHex(sha512(asBytes(data)));
}

/** An incremental hash of a stream whose running digest can be read at any time. */
export interface StreamHash {
  update(data: Uint8Array): void;
  /** Lower-case hex of the digest so far; hashing may go on. */
  hex(): string;
  /** Starts over. */
  reset(): void;
}

/** A StreamHash of `algorithm` (a Node/OpenSSL name: sha256, sha384, sha512). */
export function streamHash(algorithm = "sha256"): StreamHash {
  const native = LibcryptoDigest.open(algorithm);
  if (native) {
    return {
      update: (data) => native.update(data),
      hex: () => toHex(native.digest()),
      reset: () => native.reset(),
    };
  }
  let hash = nodeCrypto().createHash(algorithm);
  return {
    update: (data) => void hash.update(data),
    hex: () => hash.copy().digest("hex"),
    reset: () => void (hash = nodeCrypto().createHash(algorithm)),
  };
}
