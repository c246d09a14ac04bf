import { sha256Hex } from "../base/hash.ts";

/**
 * The chain IDs of a stack of layers, as the OCI image spec defines them: the first is the first diff
 * ID, each next one is sha256 of "<previous chain ID> <diff ID>". Snapshots are named by them. (Async:
 * Web Crypto, since every `ctr run` resolves a chain ID and node:crypto costs a CLI ~17 ms to load.)
 */
export async function chainIds(diffIds: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const diffId of diffIds) {
    const prev = out.at(-1);
    out.push(prev === undefined ? diffId : `sha256:${await sha256Hex(`${prev} ${diffId}`)}`);
  }
  return out;
}

/** The chain ID of the whole stack ("" for no layers). */
export async function chainId(diffIds: readonly string[]): Promise<string> {
  return (await chainIds(diffIds)).at(-1) ?? "";
}
