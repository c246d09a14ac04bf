/**
 * containerd.task.v2.Task for every container of a shared shim: each method finds its container by id.
 * Thin: the work is in Container; this layer maps states and publishes the task events containerd's
 * runc shim publishes, in the same order.
 */

import { timestampFromNanos } from "../base/timestamps.ts";
import { create } from "@bufbuild/protobuf";
import { alreadyExists, notFound } from "../base/errors.ts";
import {
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExecAddedSchema,
  TaskExecStartedSchema,
  TaskIOSchema,
  TaskOOMSchema,
  TaskPausedSchema,
  TaskResumedSchema,
  TaskStartSchema,
} from "../gen/events/task_pb.ts";
import type { Task } from "../gen/runtime/task/v2/shim_pb.ts";
import { ProcessDetailsSchema } from "../gen/types/runc/options/oci_pb.ts";
import { ProcessInfoSchema, Status } from "../gen/types/task/task_pb.ts";
import type { TtrpcServiceImpl } from "../ttrpc/mod.ts";
import { Container, type ShimContext } from "./container.ts";
import { packBare, Topic } from "./events.ts";
import type { CgroupMode } from "./cgroup_mode.ts";
import type { ContainerStatus } from "./runc.ts";

export const SHIM_VERSION = "berth-shim-v2";

const STATUS: Record<ContainerStatus, Status> = {
  creating: Status.UNKNOWN,
  created: Status.CREATED,
  running: Status.RUNNING,
  paused: Status.PAUSED,
  stopped: Status.STOPPED,
};

export interface TaskServiceOptions {
  readonly cgroupMode: CgroupMode;
  /** Called by Shutdown once no container is left: the shim exits (or lingers, then exits). */
  readonly onShutdown: (now: boolean) => void;
  /** Called on Connect: a daemon about to use this shim (it probes with Connect first). */
  readonly onConnect?: () => void;
}

export class TaskService implements TtrpcServiceImpl<typeof Task> {
  readonly #ctx: ShimContext;
  readonly #containers = new Map<string, Container>();
  readonly #creating = new Set<string>();
  readonly #options: TaskServiceOptions;

  constructor(ctx: ShimContext, options: TaskServiceOptions) {
    this.#ctx = ctx;
    this.#options = options;
  }

  get size(): number {
    return this.#containers.size + this.#creating.size;
  }

  /** Publishes a TaskOOM for the container (the OOM watcher's callback). */
  oom(id: string): void {
    if (!this.#containers.has(id)) return;
    this.#ctx.events.publish(Topic.oom, TaskOOMSchema, create(TaskOOMSchema, { containerId: id }));
  }

  #get(id: string): Container {
    const c = this.#containers.get(id);
    if (!c) throw notFound(`Container ${id} not created`);
    return c;
  }

  async state(req: { id: string; execId: string }) {
    const c = this.#get(req.id);
    const p = c.process(req.execId);
    const st = await c.status(req.execId);
    return {
      id: p.isInit ? c.id : p.execId,
      bundle: c.bundle,
      pid: p.pid,
      status: STATUS[st],
      stdin: p.stdioPaths.stdin,
      stdout: p.stdioPaths.stdout,
      stderr: p.stdioPaths.stderr,
      terminal: p.stdioPaths.terminal,
      exitStatus: p.exit?.status ?? 0,
      exitedAt: p.exit ? timestampFromNanos(p.exit.exitedAt) : undefined,
      execId: p.execId,
    };
  }

  async create(req: Parameters<TtrpcServiceImpl<typeof Task>["create"]>[0]) {
    if (this.#containers.has(req.id) || this.#creating.has(req.id)) {
      throw alreadyExists(`Container ${req.id} already exists in this shim`);
    }
    this.#creating.add(req.id);
    let c: Container;
    try {
      c = await Container.create(req, this.#ctx);
    } finally {
      this.#creating.delete(req.id);
    }
    this.#containers.set(req.id, c);
    this.#ctx.events.publish(
      Topic.create,
      TaskCreateSchema,
      create(TaskCreateSchema, {
        containerId: req.id,
        bundle: req.bundle,
        rootfs: req.rootfs,
        io: create(TaskIOSchema, {
          stdin: req.stdin,
          stdout: req.stdout,
          stderr: req.stderr,
          terminal: req.terminal,
        }),
        checkpoint: req.checkpoint,
        pid: c.pid,
      }),
    );
    return { pid: c.pid };
  }

  async start(req: { id: string; execId: string }) {
    const c = this.#get(req.id);
    const p = await c.start(req.execId);
    if (p.isInit) {
      this.#ctx.events.publish(
        Topic.start,
        TaskStartSchema,
        create(TaskStartSchema, { containerId: c.id, pid: p.pid }),
      );
    } else {
      this.#ctx.events.publish(
        Topic.execStarted,
        TaskExecStartedSchema,
        create(TaskExecStartedSchema, { containerId: c.id, execId: p.execId, pid: p.pid }),
      );
    }
    return { pid: p.pid };
  }

  async delete(req: { id: string; execId: string }) {
    const c = this.#get(req.id);
    const { pid, exit } = await c.delete(req.execId);
    if (req.execId === "") {
      this.#containers.delete(req.id);
      this.#ctx.events.publish(
        Topic.delete,
        TaskDeleteSchema,
        create(TaskDeleteSchema, {
          containerId: c.id,
          pid,
          exitStatus: exit.status,
          exitedAt: timestampFromNanos(exit.exitedAt),
          id: c.id,
        }),
      );
    }
    return { pid, exitStatus: exit.status, exitedAt: timestampFromNanos(exit.exitedAt) };
  }

  async pids(req: { id: string }) {
    const c = this.#get(req.id);
    const pids = await c.pids();
    const byPid = new Map(c.execs.map((p) => [p.pid, p.execId]));
    return {
      processes: pids.map((pid) => {
        const execId = byPid.get(pid);
        return create(ProcessInfoSchema, {
          pid,
          info: execId ? packBare(ProcessDetailsSchema, create(ProcessDetailsSchema, { execId })) : undefined,
        });
      }),
    };
  }

  async pause(req: { id: string }) {
    const c = this.#get(req.id);
    await c.pause();
    this.#ctx.events.publish(Topic.paused, TaskPausedSchema, create(TaskPausedSchema, { containerId: c.id }));
    return {};
  }

  async resume(req: { id: string }) {
    const c = this.#get(req.id);
    await c.resume();
    this.#ctx.events.publish(
      Topic.resumed,
      TaskResumedSchema,
      create(TaskResumedSchema, { containerId: c.id }),
    );
    return {};
  }

  async checkpoint(req: Parameters<TtrpcServiceImpl<typeof Task>["checkpoint"]>[0]) {
    await this.#get(req.id).checkpoint(req.path, req.options);
    return {};
  }

  async kill(req: { id: string; execId: string; signal: number; all: boolean }) {
    await this.#get(req.id).kill(req.execId, req.signal, req.all);
    return {};
  }

  exec(req: Parameters<TtrpcServiceImpl<typeof Task>["exec"]>[0]) {
    const c = this.#get(req.id);
    const p = c.addExec(req);
    this.#ctx.events.publish(
      Topic.execAdded,
      TaskExecAddedSchema,
      create(TaskExecAddedSchema, { containerId: c.id, execId: p.execId }),
    );
    return {};
  }

  resizePty(req: { id: string; execId: string; width: number; height: number }) {
    this.#get(req.id).process(req.execId).stdio?.resize(req.width, req.height);
    return {};
  }

  async closeIO(req: { id: string; execId: string; stdin: boolean }) {
    const p = this.#get(req.id).process(req.execId);
    if (req.stdin) await p.stdio?.endStdin();
    return {};
  }

  async update(req: Parameters<TtrpcServiceImpl<typeof Task>["update"]>[0]) {
    await this.#get(req.id).update(req.resources);
    return {};
  }

  async wait(req: { id: string; execId: string }, ctx: { signal: AbortSignal }) {
    const p = this.#get(req.id).process(req.execId);
    const aborted = new Promise<never>((_, reject) => {
      if (ctx.signal.aborted) reject(ctx.signal.reason);
      ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
    });
    const exit = await Promise.race([p.wait(), aborted]);
    return { exitStatus: exit.status, exitedAt: timestampFromNanos(exit.exitedAt) };
  }

  async stats(req: { id: string }) {
    const c = this.#get(req.id);
    // Loaded on the first Stats: the cgroups metrics descriptors are no part of a shim's start.
    const { packMetrics } = await import("./metrics.ts");
    return { stats: packMetrics(await c.runc.stats(c.id), this.#options.cgroupMode) };
  }

  connect(req: { id: string }) {
    this.#options.onConnect?.();
    return {
      shimPid: Deno.pid,
      taskPid: this.#containers.get(req.id)?.pid ?? 0,
      version: SHIM_VERSION,
    };
  }

  shutdown(req: { id: string; now: boolean }) {
    // A shared shim stays while it still serves a container, as containerd's runc shim does; `now`
    // (from a daemon that stops) skips the idle linger.
    if (this.size === 0) queueMicrotask(() => this.#options.onShutdown(req.now));
    return {};
  }
}
