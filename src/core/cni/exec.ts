/**
 * Running one plugin binary (CNI spec section 2): parameters in the environment, the request on stdin,
 * a result or an error object on stdout. Every run has a deadline and a cap on what it may print, and
 * the plugin inherits no descriptor of the daemon (spawnClean).
 */
import { BerthError, type ErrorKind } from "../../base/errors.ts";
import { spawnClean } from "../../base/spawn.ts";
import { type CniErrorResult, parseErrorResult, preview } from "./result.ts";

export type CniCommand = "ADD" | "DEL" | "CHECK" | "VERSION";

/** What a plugin is told about the attachment: the CNI_* variables. */
export interface PluginEnv {
  readonly command: CniCommand;
  readonly containerId: string;
  readonly netns: string;
  readonly ifname: string;
  /** CNI_ARGS, already joined ("K=V;K2=V2"). */
  readonly args: string;
  /** The folders searched for plugins, also handed to plugins that delegate (IPAM). */
  readonly path: readonly string[];
}

export interface ExecOptions {
  readonly signal?: AbortSignal;
  /** Deadline of this one run (default 60 s); the caller's signal may end it sooner. */
  readonly timeoutMs?: number;
  /** Stdout beyond this many bytes kills the plugin (default 1 MiB); stderr keeps its first 64 KiB. */
  readonly maxOutputBytes?: number;
  /** Told of the plugin's process synchronously with its spawn (a shim's reaper must leave it to Deno). */
  readonly onSpawn?: (child: Deno.ChildProcess) => void;
}

/** How a plugin run went wrong. `code` and `details` come from the plugin's error object when it printed one. */
export class PluginError extends BerthError {
  readonly plugin: string;
  readonly command: CniCommand;
  readonly code?: number;
  readonly reason: string;
  readonly details?: string;
  readonly stderr: string;

  constructor(
    kind: ErrorKind,
    what: { plugin: string; network?: string; command: CniCommand; containerId?: string },
    error: CniErrorResult,
    stderr = "",
    options?: ErrorOptions,
  ) {
    const target = what.network ? ` of network "${what.network}"` : "";
    const container = what.containerId ? ` for container "${what.containerId}"` : "";
    const detail = error.details ? `: ${error.details}` : "";
    const code = error.code !== undefined ? ` (CNI error ${error.code})` : "";
    super(
      kind,
      `CNI plugin ${what.plugin}${target} failed ${what.command}${container}: ${error.msg}${detail}${code}`,
      options,
    );
    this.name = "PluginError";
    this.plugin = what.plugin;
    this.command = what.command;
    this.code = error.code;
    this.reason = error.msg;
    this.details = error.details;
    this.stderr = stderr;
  }
}

/** Well-known CNI error codes (spec section 5) in the core's words. */
export function errorKindOfCode(code: number | undefined): ErrorKind {
  switch (code) {
    case 1:
    case 2:
    case 4:
    case 7:
      return "invalid_argument";
    case 3:
      return "not_found";
    case 11:
    case 50:
    case 51:
      return "unavailable";
    default:
      return "internal";
  }
}

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_OUTPUT = 1 << 20;
const MAX_STDERR = 64 << 10;
/** libcni retries a spawn that fails with ETXTBSY: a plugin being installed (or written by a test) is briefly busy. */
const BUSY_RETRIES = 5;
const BUSY_WAIT_MS = 200;
/** How long a plugin may ignore SIGTERM after its deadline before it gets SIGKILL. */
const KILL_GRACE_MS = 2000;
/** How long after the plugin's exit its pipes may stay open (held by a process it started). */
const DRAIN_GRACE_MS = 1000;

/** The first folder of `dirs` holding a regular file named `type`; undefined when none does. */
export async function findPlugin(type: string, dirs: readonly string[]): Promise<string | undefined> {
  if (type === "" || type.includes("/")) return undefined;
  for (const dir of dirs) {
    const path = `${dir}/${type}`;
    try {
      if ((await Deno.stat(path)).isFile) return path;
    } catch {
      // Not in this folder: try the next.
    }
  }
  return undefined;
}

function environment(env: PluginEnv): Record<string, string> {
  return {
    // Plugins run iptables, ip and friends from PATH; a daemon started with a bare environment still finds them.
    PATH: Deno.env.get("PATH") || "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: env.command,
    CNI_CONTAINERID: env.containerId,
    CNI_NETNS: env.netns,
    CNI_IFNAME: env.ifname,
    CNI_ARGS: env.args,
    CNI_PATH: env.path.join(":"),
  };
}

/** Collects a stream into one buffer of at most `max` bytes; `onOverflow` runs once if it has more. */
class CappedReader {
  readonly done: Promise<void>;
  overflow = false;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #chunks: Uint8Array[] = [];
  #size = 0;

  constructor(stream: ReadableStream<Uint8Array>, readonly max: number, onOverflow?: () => void) {
    const reader = stream.getReader();
    this.#reader = reader;
    this.done = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        if (this.overflow) continue; // drain, so the child never blocks on a full pipe
        const room = this.max - this.#size;
        if (value.length > room) {
          this.#chunks.push(value.subarray(0, room));
          this.#size = this.max;
          this.overflow = true;
          onOverflow?.();
          continue;
        }
        this.#chunks.push(value);
        this.#size += value.length;
      }
    })().catch(() => {});
  }

  /** Stops reading: a grandchild the plugin left behind may hold the pipe open for ever. */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
    await this.done;
  }

  text(): string {
    const bytes = new Uint8Array(this.#size);
    let at = 0;
    for (const c of this.#chunks) {
      bytes.set(c, at);
      at += c.length;
    }
    return new TextDecoder().decode(bytes);
  }
}

function spawnRetrying(
  path: string,
  options: Deno.CommandOptions,
  onSpawn?: (child: Deno.ChildProcess) => void,
): Promise<Deno.ChildProcess> {
  return (async () => {
    for (let attempt = 0;; attempt++) {
      try {
        const child = spawnClean(path, options);
        onSpawn?.(child);
        return child;
      } catch (err) {
        if (attempt >= BUSY_RETRIES || !/Text file busy/.test((err as Error).message)) throw err;
        await new Promise((r) => setTimeout(r, BUSY_WAIT_MS));
      }
    }
  })();
}

export interface PluginRun {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the plugin at `path` with `stdin` as its request. Resolves to its output when it exits 0; throws
 * a PluginError naming `what.plugin` otherwise: the plugin's own error object when it printed one, its
 * stderr when it printed none, or the deadline or output cap that stopped it.
 */
export async function execPlugin(
  path: string,
  request: { env: PluginEnv; stdin: string; what: { plugin: string; network?: string } },
  options: ExecOptions = {},
): Promise<PluginRun> {
  const { env, stdin } = request;
  const what = { ...request.what, command: env.command, containerId: env.containerId || undefined };
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  signal.throwIfAborted();
  let child: Deno.ChildProcess;
  try {
    child = await spawnRetrying(path, {
      env: environment(env),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      signal,
    }, options.onSpawn);
  } catch (err) {
    const msg = `cannot start ${path}: ${(err as Error).message}`;
    throw new PluginError("unavailable", what, { msg }, "", { cause: err });
  }
  const max = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  const { status, out, err } = await runToEnd(child, stdin, signal, max);
  const stdout = out.text();
  const stderr = err.text().trim();
  if (out.overflow) {
    throw new PluginError(
      "internal",
      what,
      { msg: `its output exceeds ${max} bytes; it was stopped` },
      stderr,
    );
  }
  if (signal.aborted && !status.success) {
    const timedOut = deadline.aborted;
    const reason = timedOut
      ? `it did not finish within ${timeoutMs} ms; it was stopped`
      : "the call was cancelled";
    throw new PluginError(timedOut ? "deadline_exceeded" : "canceled", what, { msg: reason }, stderr, {
      cause: signal.reason,
    });
  }
  if (!status.success) throw failure(what, status, stdout, stderr);
  return { stdout, stderr };
}

/**
 * Feeds the child its request and waits for its exit and its output. The spawn's own signal handling
 * sends SIGTERM; a plugin that ignores it gets SIGKILL a little later, as does one that prints too much.
 */
async function runToEnd(
  child: Deno.ChildProcess,
  stdin: string,
  signal: AbortSignal,
  max: number,
): Promise<{ status: Deno.CommandStatus; out: CappedReader; err: CappedReader }> {
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  };
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => killTimer = setTimeout(kill, KILL_GRACE_MS);
  signal.addEventListener("abort", onAbort, { once: true });
  const out = new CappedReader(child.stdout, max, kill);
  const err = new CappedReader(child.stderr, MAX_STDERR);
  let status: Deno.CommandStatus;
  try {
    await writeStdin(child, stdin);
    status = await child.status;
  } finally {
    signal.removeEventListener("abort", onAbort);
    clearTimeout(killTimer);
  }
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  const grace = new Promise<void>((r) => graceTimer = setTimeout(r, DRAIN_GRACE_MS));
  await Promise.race([Promise.all([out.done, err.done]), grace]);
  clearTimeout(graceTimer);
  await Promise.all([out.cancel(), err.cancel()]);
  return { status, out, err };
}

async function writeStdin(child: Deno.ChildProcess, stdin: string): Promise<void> {
  const w = child.stdin.getWriter();
  try {
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  } catch {
    // A plugin may exit without reading its request (an error before parsing, VERSION): its exit says why.
    await w.abort().catch(() => {});
  }
}

function failure(
  what: { plugin: string; network?: string; command: CniCommand; containerId?: string },
  status: Deno.CommandStatus,
  stdout: string,
  stderr: string,
): PluginError {
  const exit = status.signal ? `killed by ${status.signal}` : `exit status ${status.code}`;
  const parsed = stdout.trim() === "" ? undefined : parseErrorResult(stdout);
  if (parsed) return new PluginError(errorKindOfCode(parsed.code), what, parsed, stderr);
  // The same fallbacks as libcni's RawExec.pluginErr, with the exit status added.
  const msg = stdout.trim() !== ""
    ? `${exit}, and its error output is not a CNI error object: ${preview(stdout)}`
    : stderr !== ""
    ? `${exit}: ${lastLines(stderr)}`
    : `${exit} with no error message`;
  return new PluginError("internal", what, { msg }, stderr);
}

function lastLines(s: string): string {
  return s.split("\n").map((l) => l.trim()).filter((l) => l !== "").slice(-3).join("; ");
}
