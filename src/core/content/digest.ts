import type { Hash } from "node:crypto";
import { nodeCrypto } from "../../base/node_crypto.ts";

/**
 * An incremental hash whose running digest can be read at any time (the state is copied, so reading
 * does not end the hash).
 */
export class Digester {
  readonly algorithm: string;
  #hash: Hash;

  constructor(algorithm = "sha256") {
    this.algorithm = algorithm;
    this.#hash = nodeCrypto().createHash(algorithm);
  }

  update(data: Uint8Array): void {
    this.#hash.update(data);
  }

  digest(): string {
    return `${this.algorithm}:${this.#hash.copy().digest("hex")}`;
  }

  reset(): void {
    this.#hash = nodeCrypto().createHash(this.algorithm);
  }
}
