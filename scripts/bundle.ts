/**
 * Builds dist/bundle (or the folder given) with `deno bundle --code-splitting`, then makes the bundle's
 * `require` of Node built-ins lazy. esbuild's runtime chunk, which every chunk imports, starts with
 * `createRequire` from node:module for the CommonJS packages (commander, tar-stream): that one import
 * loads node-compat (~15 ms of CPU) in every process, `ctr run` and the shim included, whether or not
 * a CommonJS module ever runs. process.getBuiltinModule() gives the same modules on first require.
 *
 *   deno run -A scripts/bundle.ts [OUTDIR]
 */

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

const EAGER_REQUIRE = 'import { createRequire as __deno_internal_createRequire } from "node:module";\n' +
  "var __require = __deno_internal_createRequire(import.meta.url);";
const LAZY_REQUIRE = "var __require = (id) => process.getBuiltinModule(id);";

/** `source` with esbuild's eager createRequire preamble replaced by a lazy require (unchanged without it). */
export function lazyRequire(source: string): string {
  return source.replace(EAGER_REQUIRE, LAZY_REQUIRE);
}

/**
 * Bundles `entry` (main.ts by default; relative to the repository) into `outDir` (emptied first: chunk
 * names carry content hashes) and patches its chunks. `env` is deno's environment (this process's by
 * default): esbuild comes from the npm registry the first time.
 */
export async function bundle(
  dir: string,
  options: { entry?: string; env?: Record<string, string> } = {},
): Promise<void> {
  const outDir = dir.startsWith("/") ? dir : `${Deno.cwd()}/${dir}`;
  await Deno.remove(outDir, { recursive: true }).catch(() => {});
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "-q", "--code-splitting", "--outdir", outDir, options.entry ?? "main.ts"],
    cwd: ROOT,
    ...(options.env ? { env: options.env, clearEnv: true } : {}),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(`Cannot bundle Berth into ${outDir}: ${new TextDecoder().decode(r.stderr).trim()}`);
  }
  for await (const e of Deno.readDir(outDir)) {
    if (!e.isFile || !e.name.endsWith(".js")) continue;
    const path = `${outDir}/${e.name}`;
    const source = await Deno.readTextFile(path);
    const patched = lazyRequire(source);
    if (patched !== source) await Deno.writeTextFile(path, patched);
  }
}

if (import.meta.main) await bundle(Deno.args[0] ?? `${ROOT}/dist/bundle`);
