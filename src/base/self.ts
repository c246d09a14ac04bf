/**
 * How this executable runs itself again in another role (the daemon starting Berth's shim). Compiled,
 * it is just the binary; under deno it is deno with the entry module, which from source is main.ts
 * and from a bundle the bundle's entry (a chunk's own import.meta.url names the chunk, not the entry).
 */
export function selfCommand(role: string, denoFlags: readonly string[] = []): string[] {
  if (Deno.build.standalone) return [Deno.execPath(), role];
  const main = import.meta.url.endsWith(".ts")
    ? new URL("../../main.ts", import.meta.url).pathname
    : new URL(Deno.mainModule).pathname;
  return [Deno.execPath(), "run", ...DENO_RUN_FLAGS, ...denoFlags, main, role];
}

/**
 * Flags every `deno run` of Berth needs, also where no deno.json is found (a bundle outside the
 * checkout). Without lazy dynamic imports, deno reads and parses every module that main.ts can reach
 * through `import("…")` before it runs a line: the daemon's, the CLI's and the shim's whole graphs
 * for each process, ~12 ms of a bundle's `--version` (28 → 15 ms) and ~440 ms from source. A compiled
 * binary loads its modules on demand anyway.
 */
export const DENO_RUN_FLAGS = ["--unstable-lazy-dynamic-imports"] as const;
