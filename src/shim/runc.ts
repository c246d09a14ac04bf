/**
 * A typed client of an OCI runtime CLI (runc by default; crun takes the same commands and global flags,
 * except that it has no `events`). Every command runs under a deadline; failures carry the runtime's own
 * message, taken from its JSON log (or stderr): `runc create c1 failed: …`.
 */

import { BerthError, type ErrorKind } from "../base/errors.ts";
import { deadline } from "../base/timers.ts";

export const DEFAULT_RUNC_TIMEOUT_MS = 10_000;

export interface RuncOptions {
  /** The runtime binary: "runc" (default), "crun", or a path. */
  readonly binary?: string;
  /** --root: where the runtime keeps container state (runc's default is /run/runc). */
  readonly root?: string;
  /** --log: the runtime's log file. Without it, create/exec log to a temporary file per call. */
  readonly log?: string;
  /** --log-format; json (the default) lets failures quote the runtime's message. */
  readonly logFormat?: "json" | "text";
  readonly systemdCgroup?: boolean;
  /** More global flags, after Berth's own (runsc's `--network=none`). */
  readonly extraArgs?: readonly string[];
  /** The deadline of each command unless a call gives its own. */
  readonly timeoutMs?: number;
  /**
   * Told of every runtime process right after it is spawned (synchronously), so that a reaper can leave
   * it to Deno (see ffi/process.ts).
   */
  readonly onSpawn?: (child: Deno.ChildProcess) => void;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
}

/**
 * Where the container's stdio goes. runc hands its own stdio to the container process, so "piped" gives the
 * caller the container's streams; they stay open after runc itself has exited.
 */
export type StdioMode = "null" | "piped" | "inherit";

/** One mode for all three streams, or one per stream. */
export type Stdio = StdioMode | {
  readonly stdin: StdioMode;
  readonly stdout: StdioMode;
  readonly stderr: StdioMode;
};

export interface ProcessIO {
  readonly stdin: WritableStream<Uint8Array> | null;
  readonly stdout: ReadableStream<Uint8Array> | null;
  readonly stderr: ReadableStream<Uint8Array> | null;
}

export interface CreateOptions extends CallOptions {
  readonly bundle: string;
  readonly pidFile?: string;
  readonly consoleSocket?: string;
  readonly noPivot?: boolean;
  readonly noNewKeyring?: boolean;
  readonly stdio?: Stdio;
}

export interface ExecOptions extends CallOptions {
  /** The OCI process (config.json's "process" object), written to a file for --process. */
  readonly process: Record<string, unknown>;
  /** Default true: runc returns once the process started. */
  readonly detach?: boolean;
  readonly pidFile?: string;
  readonly consoleSocket?: string;
  readonly stdio?: Stdio;
}

export interface CheckpointOptions extends CallOptions {
  readonly imagePath: string;
  readonly workPath?: string;
  /** Default true, as containerd: the container keeps running unless `exit` is asked for. */
  readonly leaveRunning?: boolean;
  readonly tcpEstablished?: boolean;
  readonly externalUnixSockets?: boolean;
  readonly shellJob?: boolean;
  readonly fileLocks?: boolean;
  readonly emptyNamespaces?: readonly string[];
  readonly cgroupsMode?: string;
  readonly parentPath?: string;
}

/** `runc restore`, as containerd's runc shim calls it: detached, the shim staying the subreaper. */
export interface RestoreOptions extends CallOptions {
  readonly bundle: string;
  readonly imagePath: string;
  readonly workPath?: string;
  readonly parentPath?: string;
  readonly pidFile?: string;
  readonly consoleSocket?: string;
  readonly noPivot?: boolean;
  /** Default true: runc returns once the container runs. */
  readonly detach?: boolean;
  /** Default true: the shim, not runc, is the restored process's reaper. */
  readonly noSubreaper?: boolean;
  readonly tcpEstablished?: boolean;
  readonly externalUnixSockets?: boolean;
  readonly shellJob?: boolean;
  readonly fileLocks?: boolean;
  readonly emptyNamespaces?: readonly string[];
  readonly cgroupsMode?: string;
  readonly stdio?: Stdio;
}

/** The CRIU flags checkpoint and restore share (go-runc's CheckpointOpts.args order). */
function criuArgs(o: Omit<CheckpointOptions, "leaveRunning">): string[] {
  const args: string[] = [];
  if (o.imagePath) args.push("--image-path", o.imagePath);
  if (o.workPath) args.push("--work-path", o.workPath);
  if (o.parentPath) args.push("--parent-path", o.parentPath);
  if (o.tcpEstablished) args.push("--tcp-established");
  if (o.externalUnixSockets) args.push("--ext-unix-sk");
  if (o.shellJob) args.push("--shell-job");
  if (o.fileLocks) args.push("--file-locks");
  if (o.cgroupsMode) args.push("--manage-cgroups-mode", o.cgroupsMode);
  for (const ns of o.emptyNamespaces ?? []) args.push("--empty-ns", ns);
  return args;
}

/** The arguments of `checkpoint` (after the global ones). */
export function checkpointArgs(id: string, options: CheckpointOptions): string[] {
  const args = ["checkpoint", ...criuArgs(options)];
  if (options.leaveRunning ?? true) args.push("--leave-running");
  return [...args, id];
}

/** The arguments of `restore` (after the global ones). */
export function restoreArgs(id: string, options: RestoreOptions): string[] {
  const args = ["restore", ...criuArgs(options)];
  if (options.detach ?? true) args.push("--detach");
  if (options.pidFile) args.push("--pid-file", options.pidFile);
  if (options.consoleSocket) args.push("--console-socket", options.consoleSocket);
  if (options.noPivot) args.push("--no-pivot");
  if (options.noSubreaper ?? true) args.push("--no-subreaper");
  return [...args, "--bundle", options.bundle, id];
}

export interface ExecResult extends ProcessIO {
  /** When not detached: runc's exit code, which is the process's. Detached: 0 once started. */
  readonly exited: Promise<number>;
}

export type ContainerStatus = "creating" | "created" | "running" | "paused" | "stopped";

export interface ContainerState {
  readonly ociVersion: string;
  readonly id: string;
  readonly pid: number;
  readonly status: ContainerStatus;
  readonly bundle: string;
  readonly rootfs?: string;
  readonly created?: string;
  readonly annotations?: Record<string, string>;
  readonly owner?: string;
}

/** `runc events --stats` data (runc's types.Stats); fields depend on the cgroup version and controllers. */
export interface RuncStats {
  readonly cpu?: {
    readonly usage?: { total?: number; percpu?: number[]; kernel?: number; user?: number };
    readonly throttling?: { periods?: number; throttled_periods?: number; throttled_time?: number };
  };
  readonly memory?: {
    readonly cache?: number;
    readonly usage?: { usage?: number; max?: number; limit?: number; failcnt?: number };
    readonly raw?: Record<string, number>;
  };
  readonly pids?: { current?: number; limit?: number };
  readonly [key: string]: unknown;
}

/** A failed runtime command. */
export class RuncError extends BerthError {
  readonly command: string;
  readonly exitCode: number | undefined;
  readonly stderr: string;

  constructor(
    kind: ErrorKind,
    command: string,
    message: string,
    detail: { exitCode?: number; stderr?: string; cause?: unknown },
  ) {
    super(kind, `${command} failed: ${message}`, { cause: detail.cause });
    this.command = command;
    this.exitCode = detail.exitCode;
    this.stderr = detail.stderr ?? "";
  }
}

/** The error kind a runtime message implies (runc and crun wording). */
export function kindOfMessage(message: string): ErrorKind {
  if (/does not exist|not found|no such (file|container)/i.test(message)) return "not_found";
  if (/already exists/i.test(message)) return "already_exists";
  if (
    /not running|not paused|not stopped|is paused|is stopped|has stopped|cannot .* (paused|stopped|running)|is not in created state/i
      .test(message)
  ) {
    return "failed_precondition";
  }
  return "internal";
}

export class Runc {
  readonly #binary: string;
  readonly #root: string | undefined;
  readonly #log: string | undefined;
  readonly #logFormat: "json" | "text";
  readonly #systemdCgroup: boolean;
  readonly #extraArgs: readonly string[];
  readonly #timeoutMs: number;
  readonly #onSpawn: (child: Deno.ChildProcess) => void;

  constructor(options: RuncOptions = {}) {
    this.#binary = options.binary ?? "runc";
    this.#root = options.root;
    this.#log = options.log;
    this.#logFormat = options.logFormat ?? "json";
    this.#systemdCgroup = options.systemdCgroup ?? false;
    this.#extraArgs = options.extraArgs ?? [];
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_RUNC_TIMEOUT_MS;
    this.#onSpawn = options.onSpawn ?? (() => {});
  }

  get binary(): string {
    return this.#binary;
  }

  /** The state folder (--root; runc's own default when not given). */
  get root(): string {
    return this.#root ?? "/run/runc";
  }

  /** Creates the container (its init waits for start); resolves once the runtime has returned. */
  async create(id: string, options: CreateOptions): Promise<ProcessIO> {
    const args = ["create", "--bundle", options.bundle];
    if (options.pidFile) args.push("--pid-file", options.pidFile);
    if (options.consoleSocket) args.push("--console-socket", options.consoleSocket);
    if (options.noPivot) args.push("--no-pivot");
    if (options.noNewKeyring) args.push("--no-new-keyring");
    args.push(id);
    const { io } = await this.#spawnDetached(`create ${id}`, args, options.stdio ?? "null", true, options);
    return io;
  }

  async start(id: string, options: CallOptions = {}): Promise<void> {
    await this.#run(`start ${id}`, ["start", id], options);
  }

  state(id: string, options: CallOptions = {}): Promise<ContainerState> {
    return this.#json<ContainerState>(`state ${id}`, ["state", id], options);
  }

  /** All containers under --root. */
  async list(options: CallOptions = {}): Promise<ContainerState[]> {
    return (await this.#json<ContainerState[] | null>("list", ["list", "--format", "json"], options)) ?? [];
  }

  /** Sends a signal (number or name) to the init process, or with `all` to every process of the container. */
  async kill(
    id: string,
    signal: number | string,
    options: CallOptions & { all?: boolean } = {},
  ): Promise<void> {
    const args = ["kill"];
    if (options.all) args.push("--all");
    args.push(id, String(signal));
    await this.#run(`kill ${id}`, args, options);
  }

  async delete(id: string, options: CallOptions & { force?: boolean } = {}): Promise<void> {
    const args = ["delete"];
    if (options.force) args.push("--force");
    args.push(id);
    await this.#run(`delete ${id}`, args, options);
  }

  async pause(id: string, options: CallOptions = {}): Promise<void> {
    await this.#run(`pause ${id}`, ["pause", id], options);
  }

  async resume(id: string, options: CallOptions = {}): Promise<void> {
    await this.#run(`resume ${id}`, ["resume", id], options);
  }

  /** Runs an extra process in the container. */
  async exec(id: string, options: ExecOptions): Promise<ExecResult> {
    const detach = options.detach ?? true;
    const spec = await Deno.makeTempFile({ prefix: "berth-process-", suffix: ".json" });
    let keepSpec = false;
    try {
      await Deno.writeTextFile(spec, JSON.stringify(options.process));
      const args = ["exec", "--process", spec];
      if (detach) args.push("--detach");
      if (options.pidFile) args.push("--pid-file", options.pidFile);
      if (options.consoleSocket) args.push("--console-socket", options.consoleSocket);
      args.push(id);
      const { io, exited } = await this.#spawnDetached(
        `exec ${id}`,
        args,
        options.stdio ?? "null",
        detach,
        options,
      );
      // Attached, runc may read the file any time before the process ends.
      keepSpec = !detach;
      const done = detach ? exited : exited.finally(() => Deno.remove(spec).catch(() => {}));
      return { ...io, exited: done };
    } finally {
      if (!keepSpec) await Deno.remove(spec).catch(() => {});
    }
  }

  /** Pids of the container's processes, as seen from the host. */
  async ps(id: string, options: CallOptions = {}): Promise<number[]> {
    return (await this.#json<number[] | null>(`ps ${id}`, ["ps", "--format", "json", id], options)) ?? [];
  }

  /** One sample of the container's cgroup statistics (`events --stats`). */
  async stats(id: string, options: CallOptions = {}): Promise<RuncStats> {
    const ev = await this.#json<{ type: string; data?: RuncStats }>(`events --stats ${id}`, [
      "events",
      "--stats",
      id,
    ], options);
    return ev.data ?? {};
  }

  /** Changes resource limits; `resources` is an OCI LinuxResources object. */
  async update(id: string, resources: Record<string, unknown>, options: CallOptions = {}): Promise<void> {
    await this.#run(`update ${id}`, ["update", "--resources", "-", id], options, JSON.stringify(resources));
  }

  /** Checkpoints the container with CRIU into `imagePath`. */
  async checkpoint(id: string, options: CheckpointOptions): Promise<void> {
    await this.#run(`checkpoint ${id}`, checkpointArgs(id, options), { timeoutMs: 60_000, ...options });
  }

  /**
   * Restores a container from the CRIU image at `imagePath`; like create, the container inherits the
   * stdio given, and a detached restore resolves once the runtime has returned.
   */
  async restore(id: string, options: RestoreOptions): Promise<ProcessIO> {
    const detach = options.detach ?? true;
    const { io } = await this.#spawnDetached(
      `restore ${id}`,
      restoreArgs(id, options),
      options.stdio ?? "null",
      detach,
      { timeoutMs: 60_000, ...options },
    );
    return io;
  }

  #globalArgs(log: string | undefined): string[] {
    const args: string[] = [];
    if (this.#root) args.push("--root", this.#root);
    if (log) args.push("--log", log, "--log-format", this.#logFormat);
    if (this.#systemdCgroup) args.push("--systemd-cgroup");
    args.push(...this.#extraArgs);
    return args;
  }

  /** The call's signal with its deadline; clear() it when the runtime process has ended. */
  #signal(options: CallOptions): { signal: AbortSignal; timeoutMs: number; clear(): void } {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    return { ...deadline(timeoutMs, options.signal), timeoutMs };
  }

  async #json<T>(what: string, args: string[], options: CallOptions): Promise<T> {
    const out = await this.#run(what, args, options);
    try {
      return JSON.parse(out) as T;
    } catch (err) {
      throw new RuncError(
        "internal",
        `${this.#binary} ${what}`,
        `unreadable output ${JSON.stringify(out.slice(0, 200))}`,
        {
          cause: err,
        },
      );
    }
  }

  /** Runs a command whose stdio is ours; resolves to its stdout. */
  async #run(what: string, args: string[], options: CallOptions, stdin?: string): Promise<string> {
    const command = `${this.#binary} ${what}`;
    const { signal, timeoutMs, clear } = this.#signal(options);
    const logStart = await fileSize(this.#log);
    let out: Deno.CommandOutput;
    try {
      const child = new Deno.Command(this.#binary, {
        args: [...this.#globalArgs(this.#log), ...args],
        stdin: stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
        signal,
      }).spawn();
      this.#onSpawn(child);
      if (stdin !== undefined) {
        const w = child.stdin.getWriter();
        await w.write(new TextEncoder().encode(stdin)).finally(() => w.close().catch(() => {}));
      }
      out = await child.output();
    } catch (err) {
      throw this.#spawnError(command, err, signal, options, timeoutMs);
    } finally {
      clear();
    }
    const stderr = new TextDecoder().decode(out.stderr).trim();
    if (!out.success) {
      if (signal.aborted) throw this.#spawnError(command, signal.reason, signal, options, timeoutMs);
      const msg = (await logErrors(this.#log, logStart)) || errorMessages(stderr, false) ||
        lastLine(stderr) ||
        `exit status ${out.code}`;
      throw new RuncError(kindOfMessage(msg), command, msg, { exitCode: out.code, stderr });
    }
    return new TextDecoder().decode(out.stdout);
  }

  /**
   * Runs create/exec, whose stdio the container inherits: runc's own messages can only come from its log,
   * so a call without a configured log gets a temporary one.
   */
  async #spawnDetached(
    what: string,
    args: string[],
    stdio: Stdio,
    waitForRuntime: boolean,
    options: CallOptions,
  ): Promise<{ io: ProcessIO; exited: Promise<number> }> {
    const command = `${this.#binary} ${what}`;
    const tmpLog = this.#log ? undefined : await Deno.makeTempFile({ prefix: "berth-runc-", suffix: ".log" });
    const log = this.#log ?? tmpLog!;
    const cleanup = () => tmpLog ? Deno.remove(tmpLog).catch(() => {}) : Promise.resolve();
    const { signal, timeoutMs, clear } = this.#signal(options);
    const logStart = await fileSize(log);
    const modes = typeof stdio === "string" ? { stdin: stdio, stdout: stdio, stderr: stdio } : stdio;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(this.#binary, {
        args: [...this.#globalArgs(log), ...args],
        stdin: modes.stdin,
        stdout: modes.stdout,
        stderr: modes.stderr,
        // Only the runtime call is bounded: a non-detached exec lives as long as its process.
        signal: waitForRuntime ? signal : options.signal,
      }).spawn();
      this.#onSpawn(child);
    } catch (err) {
      clear();
      await cleanup();
      throw this.#spawnError(command, err, signal, options, timeoutMs);
    }
    const io: ProcessIO = {
      stdin: modes.stdin === "piped" ? child.stdin : null,
      stdout: modes.stdout === "piped" ? child.stdout : null,
      stderr: modes.stderr === "piped" ? child.stderr : null,
    };
    const finished = child.status.then(async (st) => {
      if (!st.success && waitForRuntime) {
        if (signal.aborted) throw this.#spawnError(command, signal.reason, signal, options, timeoutMs);
        const msg = (await logErrors(log, logStart)) || `exit status ${st.code}`;
        throw new RuncError(kindOfMessage(msg), command, msg, { exitCode: st.code });
      }
      return st.code;
    }).finally(() => {
      clear();
      return cleanup();
    });
    if (!waitForRuntime) return { io, exited: finished };
    await finished;
    return { io, exited: Promise.resolve(0) };
  }

  #spawnError(
    command: string,
    err: unknown,
    signal: AbortSignal,
    options: CallOptions,
    timeoutMs: number,
  ): Error {
    if (err instanceof RuncError) return err;
    if (signal.aborted) {
      if (options.signal?.aborted) {
        return new RuncError("canceled", command, "canceled", { cause: options.signal.reason });
      }
      return new RuncError("deadline_exceeded", command, `no answer within ${timeoutMs} ms`, { cause: err });
    }
    if (err instanceof Deno.errors.NotFound) {
      // Go's os/exec wording, which containerd's shim passes on (a BinaryName that is not installed).
      const message = this.#binary.includes("/")
        ? `fork/exec ${this.#binary}: no such file or directory`
        : `exec: "${this.#binary}": executable file not found in $PATH`;
      return new RuncError("not_found", command, message, { cause: err });
    }
    return new RuncError("internal", command, (err as Error).message ?? String(err), { cause: err });
  }
}

async function fileSize(path: string | undefined): Promise<number> {
  if (!path) return 0;
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return 0;
  }
}

/** Error and fatal messages the runtime logged since `offset` (JSON lines; plain text is taken as is). */
async function logErrors(path: string | undefined, offset: number): Promise<string> {
  if (!path) return "";
  let text: string;
  try {
    const bytes = await Deno.readFile(path);
    text = new TextDecoder().decode(bytes.subarray(offset));
  } catch {
    return "";
  }
  return errorMessages(text, true);
}

/**
 * The error and fatal messages of runtime log lines: JSON (`--log-format json`) or logrus text
 * (`level=error msg="…"`, what runc prints on stderr). Other lines count only when `plain` says so.
 */
export function errorMessages(text: string, plain: boolean): string {
  const msgs: string[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if ((entry.level === "error" || entry.level === "fatal") && entry.msg) msgs.push(entry.msg);
      continue;
    } catch {
      // not JSON
    }
    const logrus = /\blevel=(\w+)\s+msg=("(?:[^"\\]|\\.)*"|\S+)/.exec(line);
    if (logrus) {
      if (logrus[1] === "error" || logrus[1] === "fatal") msgs.push(unquote(logrus[2]!));
    } else if (plain) {
      msgs.push(line.trim());
    }
  }
  return msgs.join("; ");
}

/** A Go-quoted string's value (logrus quotes messages with strconv.Quote). */
function unquote(s: string): string {
  if (!s.startsWith('"')) return s;
  try {
    return JSON.parse(s) as string;
  } catch {
    return s.slice(1, -1).replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c === "t" ? "\t" : c));
  }
}

function lastLine(text: string): string {
  const lines = text.split("\n").filter((l) => l.trim());
  return lines.at(-1)?.trim() ?? "";
}
