import { type StreamHash, streamHash } from "../../base/hash.ts";

/**
 * An incremental hash whose running digest can be read at any time (the state is copied, so reading
 * does not end the hash).
 */
export class Digester {
  readonly algorithm: string;
  readonly #hash: StreamHash;

  constructor(algorithm = "sha256") {
    this.algorithm = algorithm;
    this.#hash = streamHash(algorithm);
  }

  update(data: Uint8Array): void {
    this.#hash.update(data);
  }

  digest(): string {
    return `${this.algorithm}:${this.#hash.hex()}`;
  }

  reset(): void {
    this.#hash.reset();
  }
}
