/**
 * The digest of bytes in hand, synchronously, by node:crypto. Its own module: node:crypto costs a process
 * ~17 ms to load, and digest.ts (parsing digests) is on every CLI verb's path; hot paths that must hash
 * use base/bytes.ts sha256Hex (Web Crypto) instead.
 */
import { nodeCrypto } from "../base/node_crypto.ts";

/** The digest of a byte string, e.g. `sha256:…`. */
export function digestOf(data: Uint8Array | string, algorithm = "sha256"): string {
  return `${algorithm}:${nodeCrypto().createHash(algorithm).update(data).digest("hex")}`;
}
