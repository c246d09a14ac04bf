/**
 * Real Go clients for compatibility tests, built offline in GOPATH mode and cached under ~/.cache (one
 * build per change of their sources); each Go test runs on its own so that a failure names the
 * behaviour.
 *
 * - tests/go/src/<pkg>: against Debian's golang-github-containerd-containerd-dev (the containerd 1.6
 *   client library): buildGoTests().
 * - tests/go/cri/<pkg>: CRI clients (k8s.io/cri-api, client-go's SPDY remotecommand), built inside
 *   Debian's containerd source package, whose vendor/ folder holds them (scripts/containerd_source.sh
 *   fetches it; `.ci/run` runs it): buildCriGoTests().
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

function goEnv(gopath = GOPATH_OWN): Record<string, string> {
  return { GOPATH: `${gopath}:${DEBIAN_GOCODE}`, GO111MODULE: "off", GOFLAGS: "", CGO_ENABLED: "0" };
}

const CACHE = `${Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache`}/berth-tests`;

async function sourceHash(dir: string): Promise<string> {
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
  return await buildCached(`${GOPATH_OWN}/src/${pkg}`, pkg, { env: goEnv(), cwd: GOPATH_OWN, target: pkg });
}

/**
 * Builds the program tests/go/src/<pkg> (a `package main`, e.g. a remote snapshotter) with `go build`
 * unless a build of the same sources is cached; returns its path.
 */
export async function buildGoProgram(pkg: string): Promise<string> {
  return await buildCached(`${GOPATH_OWN}/src/${pkg}`, pkg, {
    env: goEnv(),
    cwd: GOPATH_OWN,
    target: pkg,
    build: true,
  });
}

/** The containerd source tree scripts/containerd_source.sh unpacked, when it has. */
function containerdSource(): string | undefined {
  try {
    for (const e of Deno.readDirSync(`${CACHE}/containerd-src`)) {
      const tree = `${CACHE}/containerd-src/${e.name}`;
      if (!e.isDirectory || e.name.endsWith(".tmp")) continue;
      if (Deno.statSync(`${tree}/.berth-version`).isFile) return tree;
    }
  } catch { /* not fetched */ }
  return undefined;
}

/** Whether CRI Go clients can be built here: Go, and the containerd source tree with its vendor/. */
export const hasCriGoClient = hasGoClient && containerdSource() !== undefined;

/**
 * Builds the CRI test package tests/go/cri/<pkg>: copied into a GOPATH that holds the containerd source
 * tree as github.com/containerd/containerd, so that the tree's vendor/ applies to it.
 */
export async function buildCriGoTests(pkg: string): Promise<string> {
  const tree = containerdSource();
  if (!tree) throw new Error("No containerd source tree: run scripts/containerd_source.sh (as root) first");
  const gopath = `${CACHE}/go/cri-gopath`;
  const inTree = `${gopath}/src/github.com/containerd/containerd`;
  await Deno.mkdir(`${gopath}/src/github.com/containerd`, { recursive: true });
  // A symlink to the tree would hide vendor/ from Go's GOPATH resolution: the tree is copied once as
  // hard links (cheap: the cache is one file system).
  const linked = await Deno.readTextFile(`${inTree}/.berth-version`).catch(() => "");
  if (linked !== await Deno.readTextFile(`${tree}/.berth-version`)) {
    await Deno.remove(inTree, { recursive: true }).catch(() => {});
    const cp = await new Deno.Command("cp", { args: ["-al", tree, inTree], stderr: "piped" }).output();
    if (!cp.success) {
      throw new Error(`Cannot link ${tree} into ${inTree}: ${new TextDecoder().decode(cp.stderr)}`);
    }
  }
  const src = `${repoRoot}tests/go/cri/${pkg}`;
  const dst = `${inTree}/berth-tests/${pkg}`;
  await Deno.remove(dst, { recursive: true }).catch(() => {});
  await Deno.mkdir(dst, { recursive: true });
  for (const e of Deno.readDirSync(src)) {
    if (e.isFile && e.name.endsWith(".go")) Deno.copyFileSync(`${src}/${e.name}`, `${dst}/${e.name}`);
  }
  return await buildCached(src, `cri/${pkg}`, {
    env: goEnv(gopath),
    cwd: inTree,
    target: `./berth-tests/${pkg}`,
  });
}

/** `go test -c` (or `go build`) of `target` unless a binary of the same sources (in `dir`) is cached; returns its path. */
async function buildCached(
  dir: string,
  name: string,
  options: { env: Record<string, string>; cwd: string; target: string; build?: boolean },
): Promise<string> {
  const cache = `${CACHE}/go`;
  const suffix = options.build ? "bin" : "test";
  const bin = `${cache}/${name.replaceAll("/", "_")}-${await sourceHash(dir)}.${suffix}`;
  if (await Deno.stat(bin).then(() => true, () => false)) return bin;
  await Deno.mkdir(cache, { recursive: true });
  const tmp = `${bin}.${Deno.pid}.tmp`;
  const out = await new Deno.Command("go", {
    args: options.build ? ["build", "-o", tmp, options.target] : ["test", "-c", "-o", tmp, options.target],
    env: options.env,
    cwd: options.cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    await Deno.remove(tmp).catch(() => {});
    const dec = new TextDecoder();
    throw new Error(
      `Cannot build the Go ${options.build ? "program" : "tests"} ${name}:\n${dec.decode(out.stdout)}${
        dec.decode(out.stderr)
      }`,
    );
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
