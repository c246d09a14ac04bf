/**
 * Real Go clients for compatibility tests: Go test packages under tests/go/src, built offline in GOPATH
 * mode against Debian's golang-github-containerd-containerd-dev (the containerd 1.6 client library).
 * A package is built once per change of its sources (`go test -c`, cached under ~/.cache), and each of
 * its Go tests is run on its own so that a failure names the behaviour.
 */
const repoRoot = new URL("../../", import.meta.url).pathname;
const GOPATH_OWN = `${repoRoot}tests/go`;
const DEBIAN_GOCODE = "/usr/share/gocode";

/** Whether Go and the containerd client library are installed (`.ci/run` installs both). */
export const hasGoClient = await (async () => {
  try {
    await Deno.stat(`${DEBIAN_GOCODE}/src/github.com/containerd/containerd/client.go`);
    return (await new Deno.Command("go", { args: ["version"], stdout: "null", stderr: "null" }).output())
      .success;
  } catch {
    return false;
  }
})();

function goEnv(): Record<string, string> {
  return { GOPATH: `${GOPATH_OWN}:${DEBIAN_GOCODE}`, GO111MODULE: "off", GOFLAGS: "", CGO_ENABLED: "0" };
}

async function sourceHash(pkg: string): Promise<string> {
  const dir = `${GOPATH_OWN}/src/${pkg}`;
  const names = [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".go")).map((e) =>
    e.name
  ).sort();
  const version = await new Deno.Command("go", { args: ["version"] }).output();
  const parts: Uint8Array[] = [version.stdout];
  for (const name of names) {
    parts.push(new TextEncoder().encode(name), Deno.readFileSync(`${dir}/${name}`));
  }
  const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    joined.set(p, at);
    at += p.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
  return [...digest.slice(0, 12)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Builds `pkg`'s test binary unless a build of the same sources is cached; returns its path. */
export async function buildGoTests(pkg: string): Promise<string> {
  const cache = `${
    Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache`
  }/berth-tests/go`;
  const bin = `${cache}/${pkg.replaceAll("/", "_")}-${await sourceHash(pkg)}.test`;
  if (await Deno.stat(bin).then(() => true, () => false)) return bin;
  await Deno.mkdir(cache, { recursive: true });
  const tmp = `${bin}.${Deno.pid}.tmp`;
  const out = await new Deno.Command("go", {
    args: ["test", "-c", "-o", tmp, pkg],
    env: goEnv(),
    cwd: GOPATH_OWN,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    await Deno.remove(tmp).catch(() => {});
    const dec = new TextDecoder();
    throw new Error(`Cannot build the Go tests ${pkg}:\n${dec.decode(out.stdout)}${dec.decode(out.stderr)}`);
  }
  // Renamed into place, so a parallel test file never runs a half-written binary.
  await Deno.rename(tmp, bin);
  return bin;
}

export interface GoTestResult {
  readonly passed: boolean;
  /** The Go test's verbose output. */
  readonly output: string;
}

export interface RunGoTestOptions {
  readonly args: readonly string[];
  /**
   * Called at each `AWAIT <what>` line the test prints; the test goes on when it returns (it is told
   * "ok", or the error's message if the driver threw).
   */
  readonly driver?: (what: string) => Promise<void>;
  readonly timeoutMs?: number;
}

/** Runs one Go test (`-test.run ^name$`) of a binary from buildGoTests(). */
export async function runGoTest(bin: string, name: string, options: RunGoTestOptions): Promise<GoTestResult> {
  const child = new Deno.Command(bin, {
    args: ["-test.run", `^${name}$`, "-test.v", "-test.count=1", ...options.args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 180_000),
  }).spawn();
  let output = "";
  const stderr = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) output += chunk;
  })();
  const stdin = child.stdin.getWriter();
  for await (const line of lines(child.stdout)) {
    output += line + "\n";
    const what = /^AWAIT (\S+)/.exec(line)?.[1];
    if (what === undefined) continue;
    let answer = "ok";
    try {
      if (!options.driver) throw new Error(`no driver for "${what}"`);
      await options.driver(what);
    } catch (err) {
      answer = `driver failed: ${(err as Error).message}`.replaceAll("\n", " ");
      output += `(${answer})\n`;
    }
    await stdin.write(new TextEncoder().encode(answer + "\n")).catch(() => {});
  }
  await stdin.close().catch(() => {});
  await stderr;
  const status = await child.status;
  return { passed: status.success && /^--- PASS/m.test(output), output };
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, nl);
      pending = pending.slice(nl + 1);
    }
  }
  if (pending) yield pending;
}
