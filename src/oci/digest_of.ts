/**
 * The digest of bytes in hand, synchronously (libcrypto, else node:crypto: base/hash.ts streamHash). Its
 * own module, off the path of every CLI verb that only parses digests (digest.ts).
 */
import { streamHash } from "../base/hash.ts";

/** The digest of a byte string, e.g. `sha256:…`. */
export function digestOf(data: Uint8Array | string, algorithm = "sha256"): string {
  const hash = streamHash(algorithm);
  hash.update(typeof data === "string" ? new TextEncoder().encode(data) : data);
  return `${algorithm}:${hash.hex()}`;
}
