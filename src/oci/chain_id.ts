import { createHash } from "node:crypto";

/**
 * The chain IDs of a stack of layers, as the OCI image spec defines them: the first is the first diff
 * ID, each next one is sha256 of "<previous chain ID> <diff ID>". Snapshots are named by them.
 */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) {
    const prev = out.at(-1);
    out.push(
      prev === undefined
        ? diffId
        : `sha256:${createHash("sha256").update(`${prev} ${diffId}`).digest("hex")}`,
    );
  }
  return out;
}

/** The chain ID of the whole stack ("" for no layers). */
export function chainId(diffIds: readonly string[]): string {
  return chainIds(diffIds).at(-1) ?? "";
}
