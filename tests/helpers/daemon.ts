import { BerthClient } from "../../src/client/mod.ts";

const repoRoot = new URL("../../", import.meta.url).pathname;
export const mainTs = `${repoRoot}main.ts`;

export interface TestDaemon extends AsyncDisposable {
  readonly address: string;
  readonly root: string;
  readonly state: string;
  readonly dir: string;
  readonly process: Deno.ChildProcess;
  /** Everything the daemon logged so far. */
  logs(): string;
  client(namespace?: string): BerthClient;
  /** SIGTERM, wait for exit; returns the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
}

/**
 * The config tests start the daemon with unless they give their own: no start-up garbage collection
 * (containerd's `startup_delay = "0s"`), which would race a test's first loose ingests. Deletions are
 * still collected as containerd collects them.
 */
export const testDaemonConfig =
  'version = 2\n[plugins."io.containerd.gc.v1.scheduler"]\n  startup_delay = "0s"\n';

export interface StartOptions {
  /** Extra daemon arguments, e.g. ["--config", path]. */
  args?: string[];
  /**
   * Config file text, written to `<dir>/config.toml` and passed with --config; testDaemonConfig by
   * default.
   */
  config?: string;
  /** Reuse folders (for restart tests). */
  dir?: string;
  env?: Record<string, string>;
}

/** The command line that runs Berth from source (tests never need a compiled binary). */
export function berthCommand(
  args: string[],
  options: { env?: Record<string, string>; stdin?: "null" | "piped" } = {},
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", mainTs, ...args],
    env: options.env,
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs the Berth CLI to completion. */
export async function berth(args: string[], options: { env?: Record<string, string> } = {}) {
  const out = await berthCommand(args, options).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Starts `berth daemon` on private folders and waits until every plugin has started. */
export async function startDaemon(options: StartOptions = {}): Promise<TestDaemon> {
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "berth-test-" });
  const address = `${dir}/berth.sock`;
  const root = `${dir}/root`;
  const state = `${dir}/state`;
  const args = ["daemon", "--address", address, "--root", root, "--state", state, "--log-level", "debug"];
  const config = options.config ?? testDaemonConfig;
  await Deno.writeTextFile(`${dir}/config.toml`, config);
  args.push("--config", `${dir}/config.toml`);
  args.push(...(options.args ?? []));
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", mainTs, ...args],
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  const dec = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) log += dec.decode(chunk, { stream: true });
  };
  const pumps = Promise.all([pump(process.stdout), pump(process.stderr)]);
  let exited = false;
  const status = process.status.then((s) => {
    exited = true;
    return s;
  });

  const clients: BerthClient[] = [];
  const daemon: TestDaemon = {
    address,
    root,
    state,
    dir,
    process,
    logs: () => log,
    client(namespace = "default") {
      const c = new BerthClient(address, { namespace, timeoutMs: 10_000 });
      clients.push(c);
      return c;
    },
    async stop(signal: Deno.Signal = "SIGTERM") {
      for (const c of clients.splice(0)) c.close();
      if (!exited) {
        try {
          process.kill(signal);
        } catch { /* already gone */ }
      }
      const s = await status;
      await pumps;
      return s.code;
    },
    async [Symbol.asyncDispose]() {
      const timer = setTimeout(() => {
        try {
          process.kill("SIGKILL");
        } catch { /* gone */ }
      }, 5000);
      await daemon.stop();
      clearTimeout(timer);
      if (!options.dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };

  const deadline = Date.now() + 20_000;
  while (true) {
    if (exited) {
      await pumps;
      throw new Error(`berth daemon exited before serving:\n${log}`);
    }
    const probe = new BerthClient(address, { timeoutMs: 1000 });
    try {
      // Version is answered while the plugins still start; the plugin list once all have.
      await probe.introspection.plugins({});
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await daemon[Symbol.asyncDispose]();
        throw new Error(`berth daemon did not serve within 20s: ${(err as Error).message}\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      probe.close();
    }
  }
  return daemon;
}

/** Runs Debian's `ctr` against an address. */
export async function ctr(address: string, args: string[], options: { namespace?: string } = {}) {
  const full = [
    "--address",
    address,
    ...(options.namespace ? ["--namespace", options.namespace] : []),
    ...args,
  ];
  const out = await new Deno.Command("ctr", { args: full, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
