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
  return [Deno.execPath(), "run", ...denoFlags, main, role];
}
