import { createHash, type Hash } from "node:crypto";
import { invalidArgument } from "../../base/errors.ts";

/** The digest algorithms containerd accepts, with the length of their hex encoding. */
const ALGORITHMS: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };

export interface ParsedDigest {
  readonly algorithm: string;
  readonly encoded: string;
}

/** Splits and validates an OCI digest (`sha256:<64 hex>`); throws invalidArgument when malformed. */
export function parseDigest(digest: string): ParsedDigest {
  const i = digest.indexOf(":");
  const algorithm = i < 0 ? "" : digest.slice(0, i);
  const encoded = i < 0 ? "" : digest.slice(i + 1);
  const length = ALGORITHMS[algorithm];
  if (length === undefined) {
    throw invalidArgument(`Invalid digest ${JSON.stringify(digest)}: unsupported or missing algorithm`);
  }
  if (encoded.length !== length || !/^[a-f0-9]+$/.test(encoded)) {
    throw invalidArgument(
      `Invalid digest ${JSON.stringify(digest)}: encoded part must be ${length} lower-case hex digits`,
    );
  }
  return { algorithm, encoded };
}

/** Throws invalidArgument unless `digest` is a well-formed digest. */
export function validateDigest(digest: string): void {
  parseDigest(digest);
}

/**
 * An incremental hash whose running digest can be read at any time (the state is copied, so reading
 * does not end the hash).
 */
export class Digester {
  readonly algorithm: string;
  #hash: Hash;

  constructor(algorithm = "sha256") {
    this.algorithm = algorithm;
    this.#hash = createHash(algorithm);
  }

  update(data: Uint8Array): void {
    this.#hash.update(data);
  }

  digest(): string {
    return `${this.algorithm}:${this.#hash.copy().digest("hex")}`;
  }

  reset(): void {
    this.#hash = createHash(this.algorithm);
  }
}

/** The digest of a byte string, e.g. `sha256:…`. */
export function digestOf(data: Uint8Array | string, algorithm = "sha256"): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest("hex")}`;
}
