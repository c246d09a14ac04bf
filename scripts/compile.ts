/**
 * `deno task compile`: builds the single-file berth executable with `deno compile`.
 *
 *   deno run -A scripts/compile.ts [--entry main.ts] [--output dist/berth] [--no-check]
 *
 * deno compile appends the program to a runtime-only binary, denort, which it downloads from Deno's
 * release site unless DENORT_BIN names a local one. Where neither works this fails saying so, rather
 * than with deno's chain of network errors.
 */

import { Command } from "commander";
import { bundle } from "./bundle.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

export interface CompileOptions {
  /** Entry module; relative paths are taken from the repository root. */
  readonly entry?: string;
  /** Output file; relative paths are taken from the repository root. */
  readonly output?: string;
  readonly check?: boolean;
  /**
   * Embed scripts/bundle.ts's bundle (default) rather than the module tree; esbuild itself comes from the
   * npm registry once.
   */
  readonly bundle?: boolean;
  /** Environment for deno compile (DENORT_BIN, DENO_DIR, proxies); defaults to this process's. */
  readonly env?: Record<string, string>;
  /** Where deno's own output goes as it runs; defaults to this process's stderr. */
  readonly echo?: (chunk: Uint8Array) => void;
}

export class CompileError extends Error {
  override name = "CompileError";
}

function resolve(path: string): string {
  return path.startsWith("/") ? path : `${ROOT}/${path}`;
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

function denortTarget(): string {
  return `denort-${Deno.build.target}.zip`;
}

async function checkDenortBin(path: string): Promise<void> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(path);
  } catch {
    throw new CompileError(`Cannot compile: DENORT_BIN=${path} does not exist`);
  }
  if (!st.isFile || ((st.mode ?? 0) & 0o111) === 0) {
    throw new CompileError(`Cannot compile: DENORT_BIN=${path} is not an executable file`);
  }
}

/** Maps deno compile's failure output to one sentence that says what to do. */
export function explainFailure(output: string, denortBin: string | undefined, code: number): string {
  if (denortBin === undefined && /Setting up base binary|dl\.deno\.land|denort-[\w-]+\.zip/.test(output)) {
    return "Cannot compile: the denort runtime could not be fetched; set DENORT_BIN to a local denort " +
      `binary (unpacked from ${denortTarget()} of the Deno ${Deno.version.deno} release, the same version ` +
      "as this deno)";
  }
  if (/@esbuild/.test(output)) {
    return "Cannot compile: esbuild, which bundling uses, could not be fetched from the npm registry; " +
      "make the registry reachable once (deno caches it) or pass --no-bundle";
  }
  if (denortBin !== undefined && /Could not find denort/.test(output)) {
    return `Cannot compile: DENORT_BIN=${denortBin} could not be used as the denort runtime`;
  }
  const last = output.trim().split("\n").filter((l) => /error/i.test(l)).at(-1)?.trim();
  return `Cannot compile: deno compile exited with code ${code}${last ? ` (${last})` : ""}`;
}

// deno's own output is coloured; matching is done on plain text.
// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/**
 * Compiles entry into output; resolves to the output path, or throws CompileError saying why not.
 *
 * By default the program embedded is scripts/bundle.ts's bundle of entry, the one the benchmarks run:
 * `deno compile --bundle` made its own single bundle, which loaded Deno's Node compatibility layer in
 * every process (esbuild's eager createRequire preamble, ~15 ms of each daemon, shim and CLI start) and
 * gave up the per-role chunks. deno compile embeds the bundle's chunks (its dynamic imports are literal).
 */
export async function compile(options: CompileOptions = {}): Promise<string> {
  const env = options.env ?? Deno.env.toObject();
  const entry = resolve(options.entry ?? "main.ts");
  const output = resolve(options.output ?? "dist/berth");
  const denortBin = env.DENORT_BIN || undefined;
  if (denortBin !== undefined) await checkDenortBin(denortBin);
  await Deno.mkdir(dirname(output), { recursive: true });
  const echo = options.echo ?? ((c: Uint8Array) => Deno.stderr.writeSync(c));
  if (options.bundle === false) {
    // Managed npm (no node_modules dir) so only the packages the program imports are embedded; the
    // local node_modules also holds the toolchain (deno, buf, typescript: ~300 MB).
    const flags = [
      "--node-modules-dir=none",
      "--exclude-unused-npm",
      ...(options.check === false ? ["--no-check"] : []),
    ];
    // The entry's own folder, so deno finds that project's deno.json (the repository's for main.ts).
    return await denoCompile(entry, output, { flags, cwd: dirname(entry), env, denortBin, echo });
  }
  if (options.check !== false) await typeCheck(entry, env, echo);
  const dir = await Deno.makeTempDir({ prefix: "berth-compile-" });
  try {
    try {
      await bundle(dir, { entry, env });
    } catch (err) {
      const text = (err as Error).message;
      if (/@esbuild/.test(text)) throw new CompileError(explainFailure(text, denortBin, 1));
      const last = text.trim().split("\n").filter((l) => /error/i.test(l)).at(-1)?.trim();
      throw new CompileError(`Cannot compile: bundling ${entry} failed${last ? ` (${last})` : ""}`);
    }
    const program = `${dir}/${entry.replace(/^.*\//, "").replace(/\.[cm]?[jt]sx?$/, "")}.js`;
    // The bundle's folder has no deno.json: the bundle needs none (npm packages are inside it).
    return await denoCompile(program, output, { flags: ["--no-check"], cwd: dir, env, denortBin, echo });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function typeCheck(entry: string, env: Record<string, string>, echo: (c: Uint8Array) => void) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["check", "-q", entry],
    cwd: dirname(entry),
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.success) return;
  echo(out.stderr);
  const text = new TextDecoder().decode(out.stderr).replace(ANSI, "");
  const first = text.split("\n").find((l) => /error/i.test(l))?.trim();
  throw new CompileError(`Cannot compile: ${entry} does not type-check${first ? ` (${first})` : ""}`);
}

async function denoCompile(
  program: string,
  output: string,
  o: {
    flags: string[];
    cwd: string;
    env: Record<string, string>;
    denortBin: string | undefined;
    echo: (c: Uint8Array) => void;
  },
): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["compile", "-A", ...o.flags, "--output", output, program],
    cwd: o.cwd,
    env: o.env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const chunks: Uint8Array[] = [];
  const drain = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) {
      chunks.push(c);
      o.echo(c);
    }
  };
  const [status] = await Promise.all([child.status, drain(child.stdout), drain(child.stderr)]);
  const text = new TextDecoder().decode(await new Blob(chunks as BlobPart[]).arrayBuffer()).replace(ANSI, "");
  if (!status.success) throw new CompileError(explainFailure(text, o.denortBin, status.code));
  await smokeTest(output, o.denortBin);
  return output;
}

/**
 * A full deno CLI given as DENORT_BIN compiles fine but ignores the embedded program (`--version`
 * prints deno's version, no arguments open its REPL); catch that here, not at a user's `berth daemon`.
 */
async function smokeTest(output: string, denortBin: string | undefined): Promise<void> {
  const out = await new Deno.Command(output, {
    args: ["--version"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(15_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout).replace(ANSI, "");
  if (/^deno \d+\.\d+\.\d+/i.test(text) && /^v8 /m.test(text)) {
    await Deno.remove(output).catch(() => {});
    throw new CompileError(
      `Cannot compile: ${denortBin ?? "the runtime"} is a deno CLI, not denort: the output runs deno ` +
        "instead of the program",
    );
  }
}

if (import.meta.main) {
  const program = new Command("compile")
    .description("Build the single-file berth executable with deno compile")
    .option("--entry <file>", "entry module", "main.ts")
    .option("--output <file>", "output executable", "dist/berth")
    .option("--no-check", "skip type-checking")
    .option("--no-bundle", "embed the module tree instead of an esbuild bundle")
    .parse(Deno.args, { from: "user" });
  const o = program.opts<{ entry: string; output: string; check: boolean; bundle: boolean }>();
  try {
    const out = await compile({ entry: o.entry, output: o.output, check: o.check, bundle: o.bundle });
    const mb = (await Deno.stat(out)).size / 1024 / 1024;
    console.log(`Compiled ${out} (${mb.toFixed(1)} MiB)`);
  } catch (err) {
    console.error(err instanceof CompileError ? err.message : `Cannot compile: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
