/**
 * One container of the shim: its bundle, rootfs mount, init process and exec processes, driven through
 * the OCI runtime CLI. Exits come from the shim's reaper (claimed by pid); events go to the EventSink.
 */

import { timestampFromNanos } from "../base/timestamps.ts";
import { now } from "../base/clock.ts";
import { writeFileAtomicSync } from "../base/atomic_write.ts";
import { fromBinary } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import {
  alreadyExists,
  BerthError,
  failedPrecondition,
  invalidArgument,
  isNotFound,
  notFound,
} from "../base/errors.ts";
import { type Mount, mountAll, unmountAll } from "../core/mount/mod.ts";
import { validateIdentifier } from "../core/identifiers/mod.ts";
import { TaskExitSchema } from "../gen/events/task_pb.ts";
import type { CreateTaskRequest, ExecProcessRequest } from "../gen/runtime/task/v2/shim_pb.ts";
import { CheckpointOptionsSchema, type Options, OptionsSchema } from "../gen/types/runc/options/oci_pb.ts";
import type { ProcessSyscalls } from "../../ffi/process.ts";
import { ConsoleSocket } from "./console.ts";
import { type EventSink, Topic } from "./events.ts";
import type { OomWatcher } from "./oom.ts";
import { ContainerNetwork } from "./network.ts";
import { type ExitState, Process } from "./process.ts";
import type { Reaper } from "./reaper.ts";
import { type ContainerStatus, type ProcessIO, Runc, type Stdio } from "./runc.ts";
import { type BackgroundDeletes, isRunc, startByExecFifo } from "./runc_fast.ts";
import { runtimeArgsFor } from "./runsc.ts";
import { openOutputs, type OpenOutputsOptions, type ProcessOutputs } from "./output.ts";
import { ConsoleStdio, PipeStdio, type ProcessStdio, type StdioPaths } from "./stdio.ts";

export interface ShimContext {
  readonly namespace: string;
  readonly reaper: Reaper;
  readonly events: EventSink;
  readonly oom: OomWatcher;
  readonly proc: ProcessSyscalls;
  /** The runtime client for a container's options (binary, root, systemd cgroup). */
  runc(options: RuntimeOptions): Runc;
  /** Where `runc delete` of stopped containers goes; absent: deleted before Delete returns. */
  readonly deletes?: BackgroundDeletes;
  readonly log: (msg: string) => void;
}

/** containerd.runc.v1.Options as the shim keeps it in the bundle's options.json. */
export interface RuntimeOptions {
  readonly binaryName: string;
  readonly root: string;
  readonly systemdCgroup: boolean;
  readonly noPivotRoot: boolean;
  readonly noNewKeyring: boolean;
  readonly criuImagePath: string;
  readonly criuWorkPath: string;
  /** Global flags Berth adds for this runtime (runsc's `--network`, see runsc.ts); absent in older bundles. */
  readonly runtimeArgs?: readonly string[];
}

const RUNC_OPTIONS_TYPE = "containerd.runc.v1.Options";
/** Where runc keeps state when the options name no root; each namespace gets a folder below it. */
export const DEFAULT_RUNC_ROOT = "/run/berth/runc";
const IO_WAIT_MS = 2_000;

/** Runtime options from a request's Any (containerd.runc.v1.Options), with the shim's defaults. */
export function runtimeOptions(any: Any | undefined, namespace: string): RuntimeOptions {
  let o: Options | undefined;
  if (any && any.value.length > 0) {
    if (any.typeUrl.replace(/^.*\//, "") !== RUNC_OPTIONS_TYPE) {
      throw invalidArgument(`Unsupported runtime options type ${any.typeUrl}`);
    }
    o = fromBinary(OptionsSchema, any.value);
  }
  return {
    binaryName: o?.binaryName || "runc",
    // As containerd's shim (process.NewRunc): the namespace is a folder below the root, given or not.
    root: `${(o?.root || DEFAULT_RUNC_ROOT).replace(/\/+$/, "")}/${namespace}`,
    systemdCgroup: o?.systemdCgroup ?? false,
    noPivotRoot: o?.noPivotRoot ?? false,
    noNewKeyring: o?.noNewKeyring ?? false,
    criuImagePath: o?.criuImagePath ?? "",
    criuWorkPath: o?.criuWorkPath ?? "",
  };
}

function readPid(path: string): number {
  const pid = Number(Deno.readTextFileSync(path).trim());
  if (!Number.isInteger(pid) || pid <= 0) throw invalidArgument(`Pid file ${path} holds no pid`);
  return pid;
}

/** runc's stdio: pipes for the streams that go somewhere (a log URI sends both), none for a terminal. */
function stdioModes(paths: StdioPaths, outputs: ProcessOutputs): Stdio {
  if (paths.terminal) return "null";
  return {
    stdin: paths.stdin ? "piped" : "null",
    stdout: outputs.stdout ? "piped" : "null",
    stderr: outputs.stderr ? "piped" : "null",
  };
}

export class Container {
  readonly id: string;
  readonly bundle: string;
  readonly init: Process;
  readonly runc: Runc;
  readonly options: RuntimeOptions;
  readonly #ctx: ShimContext;
  readonly #execs = new Map<string, Process>();
  readonly #rootfsMounted: boolean;
  /** Set from Create to Start of a task created from a checkpoint: Start runs `runc restore`. */
  #restore: { imagePath: string; parentPath: string } | undefined;
  /** Berth's network hooks, taken out of config.json: the shim attaches and detaches in their place. */
  #network: ContainerNetwork | undefined;
  /** Paused through this shim (and not resumed since). */
  #paused = false;

  private constructor(
    req: CreateTaskRequest,
    ctx: ShimContext,
    options: RuntimeOptions,
    init: Process,
    rootfsMounted: boolean,
  ) {
    this.id = req.id;
    this.bundle = req.bundle;
    this.#ctx = ctx;
    this.options = options;
    this.runc = ctx.runc(options);
    this.init = init;
    this.#rootfsMounted = rootfsMounted;
  }

  /** Mounts the rootfs and runs `runc create`; the init process then waits for Start. */
  static async create(req: CreateTaskRequest, ctx: ShimContext): Promise<Container> {
    if (!req.id) throw invalidArgument("Container id must not be empty");
    validateIdentifier("task id", req.id);
    if (!req.bundle) throw invalidArgument(`Container ${req.id} has no bundle path`);
    const base = runtimeOptions(req.options, ctx.namespace);
    const options = { ...base, runtimeArgs: runtimeArgsFor(base.binaryName, req.bundle) };
    writeFileAtomicSync(`${req.bundle}/options.json`, JSON.stringify(options));
    writeFileAtomicSync(`${req.bundle}/runtime`, options.binaryName);
    const rootfs = `${req.bundle}/rootfs`;
    const mounts: Mount[] = req.rootfs.map((m) => ({
      type: m.type,
      source: m.source,
      target: m.target,
      options: m.options,
    }));
    if (mounts.length > 0) {
      Deno.mkdirSync(rootfs, { recursive: true });
      mountAll(mounts, rootfs);
    }
    const paths: StdioPaths = {
      stdin: req.stdin,
      stdout: req.stdout,
      stderr: req.stderr,
      terminal: req.terminal,
    };
    const c = new Container(req, ctx, options, new Process("", paths), mounts.length > 0);
    if (req.checkpoint) {
      // As containerd's runc shim: nothing runs before Start, which restores instead of starting.
      c.#restore = { imagePath: req.checkpoint, parentPath: req.parentCheckpoint };
      return c;
    }
    try {
      c.#network = await ContainerNetwork.claim(req.bundle);
      await c.#createInit();
      // createRuntime's moment: the init's namespaces exist, the user's program has not started.
      await c.#network?.attach(c.id, c.init.pid, c.#networkContext());
    } catch (err) {
      await c.abandon();
      throw err;
    }
    return c;
  }

  async #createInit(): Promise<void> {
    const init = this.init;
    const pidFile = `${this.bundle}/init.pid`;
    // A container of the same id that just ended may still be being deleted from runc's state.
    await this.#ctx.deletes?.done(this.runc, this.id);
    init.stdio = await withStdio(
      init.stdioPaths,
      this.#outputOptions(this.id),
      (consoleSocket, stdio) =>
        this.runc.create(this.id, {
          bundle: this.bundle,
          pidFile,
          consoleSocket,
          noPivot: this.options.noPivotRoot,
          noNewKeyring: this.options.noNewKeyring,
          stdio,
        }),
    );
    init.pid = readPid(pidFile);
    this.#ctx.reaper.claim(
      init.pid,
      (exit) => init.onExit(exit, (p, e) => this.#reportExit(p, e), () => this.#killOthers()),
    );
  }

  /** Runs `runc restore` for a task created from a checkpoint: its init exists from now on. */
  async #restoreInit(): Promise<void> {
    const init = this.init;
    const restore = this.#restore!;
    const pidFile = `${this.bundle}/init.pid`;
    await this.#ctx.deletes?.done(this.runc, this.id);
    init.stdio = await withStdio(
      init.stdioPaths,
      this.#outputOptions(this.id),
      (consoleSocket, stdio) =>
        this.runc.restore(this.id, {
          bundle: this.bundle,
          imagePath: restore.imagePath,
          workPath: this.options.criuWorkPath || undefined,
          parentPath: restore.parentPath || undefined,
          pidFile,
          consoleSocket,
          noPivot: this.options.noPivotRoot,
          detach: true,
          noSubreaper: true,
          stdio,
        }),
    );
    this.#restore = undefined;
    init.pid = readPid(pidFile);
    this.#ctx.reaper.claim(
      init.pid,
      (exit) => init.onExit(exit, (p, e) => this.#reportExit(p, e), () => this.#killOthers()),
    );
  }

  get pid(): number {
    return this.init.pid;
  }

  #networkContext() {
    return { track: (child: Deno.ChildProcess) => this.#ctx.reaper.track(child), log: this.#ctx.log };
  }

  #outputOptions(id: string): OpenOutputsOptions {
    return { id, logger: { namespace: this.#ctx.namespace, reaper: this.#ctx.reaper, proc: this.#ctx.proc } };
  }

  /** The init process ("") or an exec. */
  process(execId: string): Process {
    if (execId === "") return this.init;
    const p = this.#execs.get(execId);
    if (!p) throw notFound(`Process ${execId} of container ${this.id} does not exist`);
    return p;
  }

  get execs(): readonly Process[] {
    return [...this.#execs.values()];
  }

  /**
   * The status containerd reports, from the shim's own record as containerd's runc shim keeps it (its
   * init state machine): the reaper tells exits, and pause and resume go through this shim. Asking
   * `runc state` instead cost a runc process per `tasks get` (two of them in every `rm -f`).
   */
  status(execId: string): Promise<ContainerStatus> {
    const p = this.process(execId);
    if (p.exit) return Promise.resolve("stopped");
    if (!p.isInit) return Promise.resolve(p.state);
    if (this.#restore || p.state === "created") return Promise.resolve("created");
    return Promise.resolve(this.#paused ? "paused" : "running");
  }

  async start(execId: string): Promise<Process> {
    const p = this.process(execId);
    if (p.state !== "created" || p.exit) {
      throw failedPrecondition(
        `Cannot start process ${execId || this.id}: it is ${p.exit ? "stopped" : p.state}`,
      );
    }
    let open!: () => void;
    p.gateExits(new Promise<void>((r) => open = r));
    try {
      if (p.isInit) {
        if (this.#restore) await this.#restoreInit();
        else await this.#startInit(p);
        try {
          this.#ctx.oom.add(this.id, p.pid);
        } catch (err) {
          this.#ctx.log(`Cannot watch container ${this.id} for OOM: ${(err as Error).message}`);
        }
      } else {
        await this.#startExec(p);
      }
      p.markRunning();
      return p;
    } finally {
      // The caller publishes the start event right after this returns; exits queue behind it.
      queueMicrotask(open);
    }
  }

  /** `runc start`, or for runc what it does, without starting a runc process (see runc_fast.ts). */
  async #startInit(p: Process): Promise<void> {
    if (isRunc(this.runc) && await startByExecFifo(this.runc, this.id, { exited: p.reaped() })) return;
    await this.runc.start(this.id);
  }

  async #startExec(p: Process): Promise<void> {
    if (this.init.exit) {
      throw failedPrecondition(`Cannot start exec ${p.execId}: container ${this.id} stopped`);
    }
    const pidFile = `${this.bundle}/${p.execId}.pid`;
    // containerd's shim names an exec's logging binary by the exec's id.
    p.stdio = await withStdio(p.stdioPaths, this.#outputOptions(p.execId), async (consoleSocket, stdio) => {
      const { exited: _, ...io } = await this.runc.exec(this.id, {
        process: p.spec ?? {},
        detach: true,
        pidFile,
        consoleSocket,
        stdio,
      });
      return io;
    });
    p.pid = readPid(pidFile);
    await Deno.remove(pidFile).catch(() => {});
    this.#ctx.reaper.claim(p.pid, (exit) => p.onExit(exit, (q, e) => this.#reportExit(q, e)));
  }

  /** Records an exec (runc runs it at Start). */
  addExec(req: ExecProcessRequest): Process {
    if (!req.execId) throw invalidArgument(`Exec of container ${this.id} needs an exec id`);
    // runc writes <bundle>/<exec id>.pid: a daemon other than containerd may pass any id through.
    validateIdentifier("exec id", req.execId);
    if (this.#execs.has(req.execId)) {
      throw alreadyExists(`Exec ${req.execId} of container ${this.id} already exists`);
    }
    if (this.init.exit) throw failedPrecondition(`Cannot exec in container ${this.id}: it has stopped`);
    if (this.#restore) {
      throw failedPrecondition(`Cannot exec in container ${this.id}: it is created and not yet restored`);
    }
    let spec: Record<string, unknown>;
    try {
      spec = JSON.parse(new TextDecoder().decode(req.spec?.value ?? new Uint8Array()));
    } catch (err) {
      throw invalidArgument(`Exec ${req.execId} of container ${this.id} has no valid process spec`, {
        cause: err,
      });
    }
    // As containerd's shim: the request says whether there is a terminal. The Go client copies the
    // container's process (terminal false) and asks for one here; runc refuses a console socket then.
    spec.terminal = req.terminal;
    const p = new Process(req.execId, {
      stdin: req.stdin,
      stdout: req.stdout,
      stderr: req.stderr,
      terminal: req.terminal,
    }, spec);
    this.#execs.set(req.execId, p);
    return p;
  }

  async kill(execId: string, signal: number, all: boolean): Promise<void> {
    const p = this.process(execId);
    if (p.exit && !(p.isInit && all)) throw notFound(`Process ${execId || this.id} already finished`);
    if (p.isInit) {
      try {
        await this.runc.kill(this.id, signal, { all });
      } catch (err) {
        // runsc signals no container before its start ("cannot signal container … in state created"), so a
        // start that failed would leave its sandbox up for good; its init pid is that sandbox: kill it.
        if (signal === 9 && p.state === "created" && p.pid > 0 && /in state created/.test(`${err}`)) {
          this.#ctx.proc.kill(p.pid, signal);
          return;
        }
        throw killError(this.id, err);
      }
      return;
    }
    if (p.pid <= 0) throw failedPrecondition(`Process ${execId} of container ${this.id} has not started`);
    try {
      this.#ctx.proc.kill(p.pid, signal);
    } catch (err) {
      throw notFound(`Process ${execId} already finished`, { cause: err });
    }
  }

  /** Whether the bundle's spec has poststop hooks, which `runc delete` runs. */
  #hasPoststopHooks(): boolean {
    try {
      const spec = JSON.parse(Deno.readTextFileSync(`${this.bundle}/config.json`));
      return Array.isArray(spec?.hooks?.poststop) && spec.hooks.poststop.length > 0;
    } catch {
      return false;
    }
  }

  /** Deletes an exec, or the container's init (runc delete, rootfs unmounted). */
  async delete(execId: string): Promise<{ pid: number; exit: ExitState }> {
    const p = this.process(execId);
    if (!p.isInit) {
      if (p.state === "running" && !p.exit) {
        throw failedPrecondition(`Cannot delete exec ${execId} of container ${this.id}: it is running`);
      }
      this.#execs.delete(execId);
      this.#ctx.reaper.unclaim(p.pid);
      // What the exec wrote may still be on its way (a pty's buffer, the pump): containerd's shim waits
      // for its copy to end before it closes the exec's IO, and so does the init's delete below.
      await p.stdio?.wait(IO_WAIT_MS);
      await p.stdio?.close();
      return { pid: p.pid, exit: p.exit ?? { status: 0, exitedAt: now() } };
    }
    if (!p.exit && p.state !== "created") {
      const st = await this.status("");
      if (st === "running" || st === "paused") {
        throw failedPrecondition(`Cannot delete container ${this.id}: its task is ${st}`);
      }
    }
    // Poststop hooks (a Docker-style container's network teardown) are effects the caller waits for, as
    // with runc delete itself: such a container is deleted before Delete answers.
    if (p.exit && this.#ctx.deletes && !this.#hasPoststopHooks()) {
      this.#ctx.deletes.delete(this.runc, this.id);
    } else {
      try {
        await this.runc.delete(this.id, { force: !p.exit });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    // poststop's moment: the init is gone (a background runc delete only removes runc's state).
    await this.#network?.detach(this.id, this.#networkContext());
    // Never restored: no process ever ran.
    if (this.#restore && !p.exit) p.setExited({ status: 0, exitedAt: now() });
    if (!p.exit) {
      // A created init killed by delete --force: its real status comes from the reaper shortly.
      await Promise.race([p.wait(), new Promise((r) => setTimeout(r, 1_000))]);
      if (!p.exit) p.setExited({ status: 128 + 9, exitedAt: now() });
    }
    await p.stdio?.wait(IO_WAIT_MS);
    await this.#cleanup();
    return { pid: p.pid, exit: p.exit! };
  }

  async #cleanup(): Promise<void> {
    this.#ctx.oom.remove(this.id);
    if (this.init.pid > 0 && !this.init.exit) this.#ctx.reaper.unclaim(this.init.pid);
    await Promise.all([this.init, ...this.#execs.values()].map((p) => p.stdio?.close()));
    if (this.#rootfsMounted) {
      try {
        unmountAll(`${this.bundle}/rootfs`);
      } catch (err) {
        this.#ctx.log(`Cannot unmount the rootfs of ${this.id}: ${(err as Error).message}`);
      }
    }
  }

  /** A failed Create leaves nothing behind: the runtime's container is removed too. */
  async abandon(): Promise<void> {
    await this.runc.delete(this.id, { force: true }).catch(() => {});
    if (this.#network?.attached) await this.#network.detach(this.id, this.#networkContext());
    await this.#cleanup();
  }

  async pause(): Promise<void> {
    this.#notRestoring("pause");
    await this.runc.pause(this.id);
    this.#paused = true;
  }

  async resume(): Promise<void> {
    this.#notRestoring("resume");
    await this.runc.resume(this.id);
    this.#paused = false;
  }

  #notRestoring(what: string): void {
    if (this.#restore) throw failedPrecondition(`Cannot ${what} container ${this.id}: its task is created`);
  }

  async pids(): Promise<number[]> {
    return await this.runc.ps(this.id);
  }

  async update(resources: Any | undefined): Promise<void> {
    if (!resources) throw invalidArgument(`Update of container ${this.id} has no resources`);
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(new TextDecoder().decode(resources.value));
    } catch (err) {
      throw invalidArgument(`Update of container ${this.id}: resources are not JSON`, { cause: err });
    }
    await this.runc.update(this.id, r);
  }

  /**
   * Dumps the running (or paused) container with CRIU into `path`, as containerd's runc shim: CRIU works
   * in `<bundle>/work/criu-work` (dropped afterwards) unless told otherwise, and on failure its dump.log
   * is kept as `<bundle>/criu-dump.log` and its first errors are quoted.
   */
  async checkpoint(path: string, options: Any | undefined): Promise<void> {
    if (this.init.exit || this.init.state !== "running" || this.#restore) {
      const state = this.init.exit ? "stopped" : "created";
      throw failedPrecondition(`Cannot checkpoint container ${this.id}: its task is ${state}`);
    }
    if (!(await hasCriu())) {
      throw failedPrecondition(`Cannot checkpoint container ${this.id}: criu is not installed`);
    }
    const o = options && options.value.length > 0
      ? fromBinary(CheckpointOptionsSchema, options.value)
      : undefined;
    const given = o?.workPath || this.options.criuWorkPath;
    const work = given || `${this.bundle}/work/criu-work`;
    await Deno.mkdir(work, { recursive: true, mode: 0o700 });
    try {
      await this.runc.checkpoint(this.id, {
        imagePath: o?.imagePath || path,
        workPath: work,
        parentPath: o?.parentPath || undefined,
        leaveRunning: !(o?.exit ?? false),
        tcpEstablished: o?.openTcp,
        externalUnixSockets: o?.externalUnixSockets,
        shellJob: o?.terminal || this.init.stdioPaths.terminal,
        fileLocks: o?.fileLocks,
        emptyNamespaces: o?.emptyNamespaces,
        cgroupsMode: o?.cgroupsMode || undefined,
      });
    } catch (err) {
      const kept = `${this.bundle}/criu-dump.log`;
      const copied = await Deno.copyFile(`${work}/dump.log`, kept).then(() => true, () => false);
      const causes = copied ? await criuErrors(kept) : "";
      const first = ((err as Error).message.split("\n")[0] ?? "").trim();
      throw new BerthError(
        err instanceof BerthError ? err.kind : "internal",
        `Cannot checkpoint container ${this.id}: ${first}${causes ? `: criu: ${causes}` : ""}${
          copied ? ` (log ${kept})` : ""
        }`,
        { cause: err },
      );
    } finally {
      if (!given) await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  }

  #reportExit(p: Process, e: ExitState): void {
    // An OOM kill is told before the exit it caused, as containerd's shim does.
    if (p.isInit) this.#ctx.oom.check(this.id);
    this.#ctx.events.publish(Topic.exit, TaskExitSchema, {
      $typeName: "containerd.events.TaskExit",
      containerId: this.id,
      id: p.isInit ? this.id : p.execId,
      pid: p.pid,
      exitStatus: e.status,
      exitedAt: timestampFromNanos(e.exitedAt),
    });
  }

  /**
   * Without a pid namespace of its own the kernel does not end a container's other processes with its
   * init: they are killed before the exit is recorded, as containerd's shim does (KillAll, then
   * SetExited). `runc kill --all` freezes the cgroup while it signals; a Delete that raced it found the
   * container "paused" and left its cgroups behind.
   */
  async #killOthers(): Promise<void> {
    if (this.#hasOwnPidNamespace()) return;
    await this.runc.kill(this.id, 9, { all: true });
  }

  #hasOwnPidNamespace(): boolean {
    try {
      const spec = JSON.parse(Deno.readTextFileSync(`${this.bundle}/config.json`));
      const nss = (spec?.linux?.namespaces ?? []) as { type?: string; path?: string }[];
      return nss.some((n) => n.type === "pid" && !n.path);
    } catch {
      return true;
    }
  }
}

/**
 * What a failed `runc kill` means to the caller, as containerd's shim maps it (checkKillError): a process
 * that is gone and a container that runc no longer knows (its state removed behind the shim's back) are
 * both not found, so that a client's kill-then-wait goes on to the exit.
 */
export function killError(id: string, err: unknown): Error {
  const message = (err as Error).message ?? String(err);
  if (/process already finished|container not running|not running|no such process/i.test(message)) {
    return notFound(`Process ${id} already finished`, { cause: err });
  }
  if (/does not exist|not found/i.test(message)) {
    return notFound(`Container ${id} does not exist in the runtime`, { cause: err });
  }
  return err instanceof Error ? err : new Error(message);
}

/** The first errors CRIU logged ("Error (file:line): message"), without their timestamps. */
export async function criuErrors(logPath: string, max = 2): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(logPath);
  } catch {
    return "";
  }
  return text.split("\n")
    .map((l) => l.replace(/^\([\d.]+\)\s*/, "").trim())
    .filter((l) => l.startsWith("Error ("))
    .slice(0, max)
    .join("; ");
}

/** Looked up on PATH rather than run: every child the shim spawns would need the reaper's care. */
function hasCriu(): Promise<boolean> {
  const dirs = (Deno.env.get("PATH") || "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    .split(":");
  return Promise.resolve(dirs.some((d) => {
    try {
      return Deno.statSync(`${d}/criu`).isFile;
    } catch {
      return false;
    }
  }));
}

/**
 * Opens a process's output destinations (and, for a terminal, runc's console socket), runs `spawn` with
 * the stdio runc should give the process, and wires the result up: the pty master when a terminal was
 * asked for, else runc's pipes. On failure nothing stays open and no logging binary stays running.
 */
async function withStdio(
  paths: StdioPaths,
  options: OpenOutputsOptions,
  spawn: (consoleSocket: string | undefined, stdio: Stdio) => Promise<ProcessIO>,
): Promise<ProcessStdio> {
  const outputs = await openOutputs(paths, options);
  let console: ConsoleSocket | undefined;
  try {
    console = paths.terminal ? await ConsoleSocket.create() : undefined;
    const io = await spawn(console?.path, stdioModes(paths, outputs));
    if (!console) return new PipeStdio(io, paths.stdin, outputs);
    const { fd } = await console.receive();
    return new ConsoleStdio(fd, paths.stdin, outputs);
  } catch (err) {
    await outputs.close();
    throw err;
  } finally {
    console?.close();
  }
}
