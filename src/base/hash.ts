/**
 * SHA-2 of small things (names, ids, chain IDs) without node:crypto, which costs a CLI process ~17 ms to
 * load with node-compat before its first call. Streams of content (layers, blobs) hash with node:crypto
 * in the daemon, where it is loaded anyway.
 */
import { sha256, sha512 } from "@noble/hashes/sha2.js";

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
