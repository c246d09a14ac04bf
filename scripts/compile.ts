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

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

export interface CompileOptions {
  /** Entry module; relative paths are taken from the repository root. */
  readonly entry?: string;
  /** Output file; relative paths are taken from the repository root. */
  readonly output?: string;
  readonly check?: boolean;
  /** Bundle with esbuild before embedding (default); esbuild itself comes from the npm registry once. */
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
    return "Cannot compile: esbuild, which --bundle uses, could not be fetched from the npm registry; " +
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

/** Compiles entry into output; resolves to the output path, or throws CompileError saying why not. */
export async function compile(options: CompileOptions = {}): Promise<string> {
  const env = options.env ?? Deno.env.toObject();
  const entry = resolve(options.entry ?? "main.ts");
  const output = resolve(options.output ?? "dist/berth");
  const denortBin = env.DENORT_BIN || undefined;
  if (denortBin !== undefined) await checkDenortBin(denortBin);
  await Deno.mkdir(dirname(output), { recursive: true });

  const args = [
    "compile",
    "-A",
    // Managed npm (no node_modules dir) so only the packages the program imports are embedded;
    // the local node_modules also holds the toolchain (deno, buf, typescript: ~300 MB).
    "--node-modules-dir=none",
    // One esbuild bundle instead of the module tree: start-up from a bundle measured ~80 ms against
    // ~190 ms for the module graph.
    ...(options.bundle === false ? [] : ["--bundle"]),
    "--exclude-unused-npm",
    ...(options.check === false ? ["--no-check"] : []),
    "--output",
    output,
    entry,
  ];
  const child = new Deno.Command(Deno.execPath(), {
    args,
    // The entry's own folder, so deno finds that project's deno.json (the repository's for main.ts).
    cwd: dirname(entry),
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const echo = options.echo ?? ((c: Uint8Array) => Deno.stderr.writeSync(c));
  const chunks: Uint8Array[] = [];
  const drain = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) {
      chunks.push(c);
      echo(c);
    }
  };
  const [status] = await Promise.all([child.status, drain(child.stdout), drain(child.stderr)]);
  const text = new TextDecoder().decode(await new Blob(chunks as BlobPart[]).arrayBuffer()).replace(ANSI, "");
  if (!status.success) throw new CompileError(explainFailure(text, denortBin, status.code));
  await smokeTest(output, denortBin);
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
