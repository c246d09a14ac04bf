/** Timed child processes for the groups: ctr, Berth's CLI, runc, curl — wall time including start-up. */

export interface Timed {
  readonly ms: number;
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const decoder = new TextDecoder();

/** Runs argv to completion and times it; killed (and reported as failed) after timeoutMs. */
export async function timed(
  argv: readonly string[],
  options: { signal?: AbortSignal; timeoutMs?: number; cwd?: string } = {},
): Promise<Timed> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 120_000);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const t0 = performance.now();
  const out = await new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal,
    ...(options.cwd ? { cwd: options.cwd } : {}),
  }).output();
  const ms = performance.now() - t0;
  return { ms, code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Like timed(), but a non-zero exit is an error that quotes the command and its stderr. */
export async function must(
  argv: readonly string[],
  options: { signal?: AbortSignal; timeoutMs?: number; cwd?: string } = {},
): Promise<Timed> {
  const r = await timed(argv, options);
  if (r.code !== 0) {
    options.signal?.throwIfAborted();
    const cmd = argv.map((a) => a.replace(/^.*\/(deno|berth\.js)$/, "$1")).join(" ");
    const tail = (r.stderr.trim() || r.stdout.trim()).split("\n").slice(-3).join("; ");
    throw new Error(`${cmd} exited with ${r.code}: ${tail || "no output"}`);
  }
  return r;
}

/** `ctr -a SOCKET -n NS …` */
export function ctrArgv(socket: string, namespace: string, args: readonly string[]): string[] {
  return ["ctr", "-a", socket, "-n", namespace, ...args];
}

/** Runs `jobs` with at most `lanes` at a time; resolves with their results in order. */
export async function inLanes<T>(jobs: readonly (() => Promise<T>)[], lanes: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const lane = async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(lanes, jobs.length) }, lane));
  return out;
}
