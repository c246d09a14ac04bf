import { concatBytes } from "../../base/bytes.ts";
import type { BerthError } from "../../base/errors.ts";

/**
 * Keeps the most telling error across hosts, as containerd does: an error that got further (not found
 * beats connection refused, a server's 4xx/5xx beats not found) wins; at equal rank the first stays.
 */
export class ErrorRanking {
  #best: BerthError | undefined;
  #rank = 0;

  get rank(): number {
    return this.#rank;
  }

  add(err: BerthError, rank: number): void {
    if (rank > this.#rank) {
      this.#best = err;
      this.#rank = rank;
    }
  }

  best(): BerthError | undefined {
    return this.#best;
  }
}

/** Reads a response body, refusing more than `limit` bytes. */
export async function readLimited(res: Response, limit: number, tooLarge: () => Error): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (res.body) {
    for await (const chunk of res.body) {
      total += chunk.byteLength;
      // Throwing out of for-await cancels the body.
      if (total > limit) throw tooLarge();
      chunks.push(chunk);
    }
  }
  return concatBytes(chunks, total);
}
