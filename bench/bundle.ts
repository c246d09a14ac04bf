/**
 * Keeps dist/bundle/main.js (the esbuild bundle Berth runs from in the benchmark) no older than its
 * sources. It is split by role (--code-splitting): each role loads only its own chunks, which measured
 * `--version` 80 -> 20 ms and daemon start-up ~140 -> ~118 ms against one file.
 */

import { bundle } from "../scripts/bundle.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Whether a bundle last written at bundleMs is older than any source (or missing: undefined). */
export function isStale(bundleMs: number | undefined, sourceMs: readonly number[]): boolean {
  if (bundleMs === undefined) return true;
  return sourceMs.some((m) => m > bundleMs);
}

async function mtimes(dir: string, out: number[]): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) await mtimes(p, out);
    else if (e.isFile && e.name.endsWith(".ts")) out.push((await Deno.stat(p)).mtime?.getTime() ?? 0);
  }
}

/** Rebuilds dist/bundle with `deno bundle` when it is missing or older than main.ts, src/ or ffi/. */
export async function ensureBundle(log: (line: string) => void): Promise<string> {
  const dir = `${ROOT}/dist/bundle`;
  const out = `${dir}/main.js`;
  const bundleMs = await Deno.stat(out).then((s) => s.mtime?.getTime(), () => undefined);
  const sources: number[] = [(await Deno.stat(`${ROOT}/main.ts`)).mtime?.getTime() ?? 0];
  await mtimes(`${ROOT}/src`, sources);
  await mtimes(`${ROOT}/ffi`, sources);
  if (!isStale(bundleMs, sources)) return out;
  log(`Bundling ${dir} (scripts/bundle.ts: deno bundle --code-splitting main.ts, lazy require)`);
  await bundle(dir);
  return out;
}
