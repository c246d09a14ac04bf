/**
 * A task as the daemon's callers see it: verbs over the process tree one shim runs for one container.
 * The ttrpc Task API (containerd's shim v2 contract) stays behind these methods, so the Tasks service,
 * checkpointing and CRI speak TypeScript, not shim messages.
 */
import { create } from "@bufbuild/protobuf";
import { type Any, AnySchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Task } from "../../gen/runtime/task/v2/shim_pb.ts";
import type { Status } from "../../gen/types/task/task_pb.ts";
import { createTtrpcClient, type TtrpcClient, type TtrpcServiceClient } from "../../ttrpc/mod.ts";
import type { AnyValue } from "../containers/mod.ts";
import type { Mount } from "../mount/mod.ts";
import type { Bundle } from "./bundle.ts";
import type { ShimLog } from "./shim_log.ts";
import { validateIdentifier } from "../identifiers/mod.ts";
import { notFound } from "../../base/errors.ts";

/** The shim's ttrpc Task client: only this module and the task manager hold one. */
export type TaskClient = TtrpcServiceClient<typeof Task>;

/** How long to wait for a process to exit: as long as it takes (the caller's signal cancels). */
const FOREVER_MS = 2 ** 31 - 1;

/** One connection to a shim process, shared by every task that shim serves. */
export class ShimConnection {
  readonly address: string;
  readonly client: TtrpcClient;
  readonly task: TaskClient;
  readonly tasks = new Set<ShimTask>();
  /** Tasks being created over this connection, not in `tasks` yet. */
  claims = 0;
  closing = false;

  constructor(address: string, client: TtrpcClient) {
    this.address = address;
    this.client = client;
    this.task = createTtrpcClient(Task, client);
  }
}

/** The state of a task's init process (execId "") or of one of its exec'd processes. */
export interface ProcessState {
  readonly id: string;
  readonly execId: string;
  readonly pid: number;
  readonly status: Status;
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly terminal: boolean;
  readonly exitStatus: number;
  /** As the shim reported it, to the nanosecond. */
  readonly exitedAt?: Timestamp;
}

/** How a process ended. */
export interface ProcessExit {
  readonly pid: number;
  readonly exitStatus: number;
  /** As the shim reported it, to the nanosecond. */
  readonly exitedAt?: Timestamp;
}

export interface ExecOptions {
  /** The process spec (types.containerd.io/opencontainers/runtime-spec/1/Process), as the client sent it. */
  readonly spec?: AnyValue;
  readonly terminal: boolean;
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
}

/** What the shim creates a task from: the bundle's spec is already written. */
export interface ShimCreateRequest {
  readonly rootfs: readonly Mount[];
  readonly terminal: boolean;
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
  /** A CRIU image folder the shim restores from at Start, or "". */
  readonly checkpoint: string;
  readonly options?: AnyValue;
}

function anyOf(v: AnyValue | undefined): Any | undefined {
  return v ? create(AnySchema, { typeUrl: v.typeUrl, value: v.value }) : undefined;
}

/** A task the daemon knows: its bundle and the shim that runs it. */
export class ShimTask {
  readonly namespace: string;
  readonly id: string;
  readonly bundle: Bundle;
  readonly runtime: string;
  readonly command: readonly string[];
  readonly conn: ShimConnection;
  readonly log?: ShimLog;

  constructor(
    bundle: Bundle,
    init: { runtime: string; command: readonly string[]; conn: ShimConnection; log?: ShimLog },
  ) {
    this.namespace = bundle.namespace;
    this.id = bundle.id;
    this.bundle = bundle;
    this.runtime = init.runtime;
    this.command = init.command;
    this.conn = init.conn;
    this.log = init.log;
  }

  #deleted = false;

  /**
   * Marks the task deleted (by the task manager, once the shim deleted it). Later calls fail NotFound at
   * once instead of reaching a connection the manager may already have closed for an idle shim.
   */
  markDeleted(): void {
    this.#deleted = true;
  }

  get deleted(): boolean {
    return this.#deleted;
  }

  /**
   * One call to the shim. A task deleted while the call was in flight (a TaskExit handler deleting it
   * during a kill, then the manager closing the idle shim's connection) answers NotFound, as containerd
   * does for a task that is gone, not Unavailable for a connection the caller never saw close.
   */
  async #call<T>(call: (shim: TaskClient) => Promise<T>): Promise<T> {
    if (this.#deleted) throw notFound(`Task ${this.id} not found: it was deleted`);
    try {
      return await call(this.conn.task);
    } catch (err) {
      if (this.#deleted) throw notFound(`Task ${this.id} not found: it was deleted`, { cause: err });
      throw err;
    }
  }

  /** Creates the task in the shim; the mounts are converted to the wire here, once. */
  async create(req: ShimCreateRequest, options: CallOptions = {}): Promise<number> {
    const res = await this.#call((s) =>
      s.create({
        id: this.id,
        bundle: this.bundle.path,
        rootfs: req.rootfs.map((m) => ({
          type: m.type,
          source: m.source,
          target: m.target ?? "",
          options: [...m.options],
        })),
        terminal: req.terminal,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
        checkpoint: req.checkpoint,
        options: anyOf(req.options),
      }, { signal: options.signal, timeoutMs: options.timeoutMs ?? 60_000 })
    );
    return res.pid;
  }

  /** Starts the init process (execId "") or an exec'd one; returns its pid. */
  async start(execId = "", options: CallOptions = {}): Promise<number> {
    return (await this.#call((s) => s.start({ id: this.id, execId }, options))).pid;
  }

  async state(execId = "", options: CallOptions = {}): Promise<ProcessState> {
    const s = await this.#call((s) => s.state({ id: this.id, execId }, options));
    return {
      id: s.id,
      execId: s.execId,
      pid: s.pid,
      status: s.status,
      stdin: s.stdin,
      stdout: s.stdout,
      stderr: s.stderr,
      terminal: s.terminal,
      exitStatus: s.exitStatus,
      exitedAt: s.exitedAt,
    };
  }

  async kill(signal: number, options: { execId?: string; all?: boolean } = {}): Promise<void> {
    await this.#call((s) =>
      s.kill({ id: this.id, execId: options.execId ?? "", signal, all: options.all ?? false })
    );
  }

  async exec(execId: string, options: ExecOptions): Promise<void> {
    // As containerd's runtime v2: the shim builds pid-file and fifo paths from the exec id.
    validateIdentifier("exec id", execId);
    await this.#call((s) =>
      s.exec({
        id: this.id,
        execId,
        terminal: options.terminal,
        stdin: options.stdin,
        stdout: options.stdout,
        stderr: options.stderr,
        spec: anyOf(options.spec),
      })
    );
  }

  /** Deletes an exec'd process (the task's own delete goes through the task manager). */
  async deleteProcess(execId: string): Promise<ProcessExit> {
    const res = await this.#call((s) => s.delete({ id: this.id, execId }));
    return { pid: res.pid, exitStatus: res.exitStatus, exitedAt: res.exitedAt };
  }

  /** Waits for a process to exit, as long as it takes or until `signal` aborts. */
  async wait(execId = "", options: { signal?: AbortSignal } = {}): Promise<ProcessExit> {
    const res = await this.#call((s) =>
      s.wait({ id: this.id, execId }, {
        signal: options.signal,
        timeoutMs: FOREVER_MS,
      })
    );
    return { pid: 0, exitStatus: res.exitStatus, exitedAt: res.exitedAt };
  }

  async pause(): Promise<void> {
    await this.#call((s) => s.pause({ id: this.id }));
  }

  async resume(): Promise<void> {
    await this.#call((s) => s.resume({ id: this.id }));
  }

  /** The processes in the task's cgroup, with what the shim knows of each (exec ids in `info`). */
  async pids(): Promise<{ pid: number; info?: Any }[]> {
    const res = await this.#call((s) => s.pids({ id: this.id }));
    return res.processes.map((p) => ({ pid: p.pid, info: p.info }));
  }

  async closeIO(execId: string, options: { stdin: boolean }): Promise<void> {
    await this.#call((s) => s.closeIO({ id: this.id, execId, stdin: options.stdin }));
  }

  async resizePty(execId: string, size: { width: number; height: number }): Promise<void> {
    await this.#call((s) => s.resizePty({ id: this.id, execId, width: size.width, height: size.height }));
  }

  async update(resources: AnyValue | undefined, annotations: Readonly<Record<string, string>> = {}) {
    await this.#call((s) =>
      s.update({ id: this.id, resources: anyOf(resources), annotations: { ...annotations } })
    );
  }

  /** The task's cgroup metrics (io.containerd.cgroups.v1.Metrics or v2), as the shim packed them. */
  async stats(options: CallOptions = {}): Promise<Any | undefined> {
    return (await this.#call((s) => s.stats({ id: this.id }, options))).stats;
  }

  /** Has the runtime dump the task into `path` (runc checkpoint through CRIU). */
  async checkpoint(path: string, options: CallOptions & { runtimeOptions?: AnyValue } = {}): Promise<void> {
    await this.#call((s) =>
      s.checkpoint({ id: this.id, path, options: anyOf(options.runtimeOptions) }, {
        signal: options.signal,
        timeoutMs: options.timeoutMs,
      })
    );
  }
}
