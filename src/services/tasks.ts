import { create } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { now } from "../base/clock.ts";
import { timestampFromNanos } from "../base/timestamps.ts";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { ContainerStore } from "../core/containers/mod.ts";
import type { ContentStore } from "../core/content/mod.ts";
import { alreadyExists, invalidArgument, isNotFound, notFound } from "../base/errors.ts";
import { parseFilters } from "../core/filters/mod.ts";
import type { LeaseManager } from "../core/leases/mod.ts";
import {
  checkpointTask,
  checkRestoreSource,
  type ProcessState,
  releaseRestoreImage,
  restoreImagePath,
  type ShimTask,
  type TaskManager,
  unpackCheckpoint,
} from "../core/runtime/mod.ts";
import type { Snapshotter } from "../core/snapshots/mod.ts";
import type { Mount } from "../core/mount/mod.ts";
import { Tasks } from "../gen/services/tasks/v1/tasks_pb.ts";
import { type Process, ProcessSchema } from "../gen/types/task/task_pb.ts";
import { MetricSchema } from "../gen/types/metrics_pb.ts";
import { type GrpcService } from "../plugins/registry.ts";
import { leaseOf, namespaceOf } from "./context.ts";

export interface TasksServiceDeps {
  readonly containers: ContainerStore;
  readonly runtime: TaskManager;
  /** For a task created without rootfs mounts: the container's snapshot is mounted instead. */
  readonly snapshotters: ReadonlyMap<string, Snapshotter>;
  /** Where checkpoints are written to and restored from. */
  readonly content: ContentStore;
  /** When present, checkpoint blobs written under a `containerd-lease` header are added to that lease. */
  readonly leases?: LeaseManager;
  /** A folder for the temporary CRIU image folders of checkpoints (the plugin's root). */
  readonly tempRoot: string;
}

/** containerd.services.tasks.v1.Tasks over the runtime v2 task manager, as containerd 1.6's local service. */
export function createTasksService(deps: TasksServiceDeps): GrpcService {
  return { register: (router) => router.service(Tasks, tasksHandlers(deps)) };
}

function tasksHandlers(deps: TasksServiceDeps): ServiceImpl<typeof Tasks> {
  const { containers, runtime } = deps;
  /** containerd's getTask: the container must exist, then its task. */
  const getTask = (ctx: HandlerContext, id: string): ShimTask => {
    const ns = namespaceOf(ctx);
    containers.get(ns, id);
    try {
      return runtime.get(ns, id);
    } catch (err) {
      if (isNotFound(err)) throw notFound(`Task ${id} not found`);
      throw err;
    }
  };
  return {
    async create(req, ctx) {
      const ns = namespaceOf(ctx);
      const container = containers.get(ns, req.containerId);
      if (runtime.has(ns, req.containerId)) throw alreadyExistsTask(req.containerId);
      const taskOptions = req.options
        ? { typeUrl: req.options.typeUrl, value: req.options.value }
        : undefined;
      const checkpoint = restoreImagePath(container.runtime.name, taskOptions);
      let unpack: ((dir: string) => Promise<void>) | undefined;
      if (checkpoint === "" && req.checkpoint) {
        await checkRestoreSource(deps.content, ns, req.checkpoint);
        const digest = req.checkpoint.digest;
        unpack = (dir) => unpackCheckpoint(deps.content, ns, { digest, dir, signal: ctx.signal });
      }
      let rootfs: Mount[] = req.rootfs.map((m) => ({
        type: m.type,
        source: m.source,
        target: m.target,
        options: [...m.options],
      }));
      if (rootfs.length === 0 && container.snapshotKey !== "") {
        const sn = deps.snapshotters.get(container.snapshotter);
        if (!sn) {
          throw invalidArgument(
            `Snapshotter "${container.snapshotter}" of container "${container.id}" is not loaded`,
          );
        }
        rootfs = await sn.mounts(ns, container.snapshotKey);
      }
      const { pid } = await runtime.create(ns, req.containerId, {
        spec: container.spec?.value ?? new Uint8Array(),
        rootfs,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
        terminal: req.terminal,
        runtime: req.runtimePath || container.runtime.name,
        runtimeOptions: container.runtime.options,
        taskOptions,
        checkpoint: checkpoint || undefined,
        unpackCheckpoint: unpack,
        signal: ctx.signal,
      });
      return { containerId: req.containerId, pid };
    },
    async start(req, ctx) {
      const t = getTask(ctx, req.containerId);
      const pid = await t.start(req.execId, { signal: ctx.signal });
      // A restored task runs now: its unpacked image is not read again.
      if (req.execId === "") await releaseRestoreImage(t.bundle.path);
      return { pid };
    },
    async delete(req, ctx) {
      const ns = namespaceOf(ctx);
      getTask(ctx, req.containerId);
      const exit = await runtime.delete(ns, req.containerId);
      return {
        id: req.containerId,
        pid: exit.pid,
        exitStatus: exit.exitStatus,
        exitedAt: exit.exitedAt,
      };
    },
    async deleteProcess(req, ctx) {
      const t = getTask(ctx, req.containerId);
      if (req.execId === "") throw invalidArgument("Exec id must not be empty to delete a process");
      const exit = await t.deleteProcess(req.execId);
      return { id: req.execId, pid: exit.pid, exitStatus: exit.exitStatus, exitedAt: exit.exitedAt };
    },
    async get(req, ctx) {
      const t = getTask(ctx, req.containerId);
      return { process: processOf(req.containerId, await t.state(req.execId)) };
    },
    async list(req, ctx) {
      const ns = namespaceOf(ctx);
      const filter = parseFilters(req.filter ? [req.filter] : []);
      const tasks: Process[] = [];
      for (const t of runtime.list(ns)) {
        try {
          const p = processOf(t.id, await t.state("", { timeoutMs: 2000 }));
          if (filter.match((path) => path[0] === "id" || path[0] === "container_id" ? t.id : undefined)) {
            tasks.push(p);
          }
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
      return { tasks };
    },
    async kill(req, ctx) {
      const t = getTask(ctx, req.containerId);
      await t.kill(req.signal, { execId: req.execId, all: req.all });
      return {};
    },
    async exec(req, ctx) {
      if (req.execId === "") throw invalidArgument("exec id cannot be empty");
      const t = getTask(ctx, req.containerId);
      await t.exec(req.execId, {
        terminal: req.terminal,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
        spec: req.spec,
      });
      return {};
    },
    async resizePty(req, ctx) {
      const t = getTask(ctx, req.containerId);
      await t.resizePty(req.execId, { width: req.width, height: req.height });
      return {};
    },
    async closeIO(req, ctx) {
      const t = getTask(ctx, req.containerId);
      await t.closeIO(req.execId, { stdin: req.stdin });
      return {};
    },
    async pause(req, ctx) {
      await getTask(ctx, req.containerId).pause();
      return {};
    },
    async resume(req, ctx) {
      await getTask(ctx, req.containerId).resume();
      return {};
    },
    async listPids(req, ctx) {
      return { processes: await getTask(ctx, req.containerId).pids() };
    },
    async checkpoint(req, ctx) {
      const ns = namespaceOf(ctx);
      const container = containers.get(ns, req.containerId);
      const descriptors = await checkpointTask(getTask(ctx, req.containerId), {
        store: { content: deps.content, leases: deps.leases },
        tempRoot: deps.tempRoot,
        runtime: container.runtime.name,
        spec: container.spec,
        options: req.options ? { typeUrl: req.options.typeUrl, value: req.options.value } : undefined,
        lease: leaseOf(ctx),
        signal: ctx.signal,
      });
      return {
        descriptors: descriptors.map((d) => ({
          mediaType: d.mediaType,
          digest: d.digest,
          size: BigInt(d.size),
          annotations: { ...d.annotations },
        })),
      };
    },
    async update(req, ctx) {
      const t = getTask(ctx, req.containerId);
      await t.update(req.resources, req.annotations);
      return {};
    },
    async metrics(req, ctx) {
      const ns = namespaceOf(ctx);
      const filter = parseFilters(req.filters);
      const metrics = [];
      for (const t of runtime.list(ns)) {
        const match = filter.match((path) =>
          path.length !== 1 ? undefined : path[0] === "id" ? t.id : path[0] === "namespace" ? ns : undefined
        );
        if (!match) continue;
        const stats = await t.stats();
        metrics.push(create(MetricSchema, {
          timestamp: timestampFromNanos(now()),
          id: t.id,
          data: stats && create(AnySchema, stats),
        }));
      }
      return { metrics };
    },
    async wait(req, ctx) {
      const t = getTask(ctx, req.containerId);
      const exit = await t.wait(req.execId, { signal: ctx.signal });
      return { exitStatus: exit.exitStatus, exitedAt: exit.exitedAt };
    },
  };
}

function alreadyExistsTask(id: string) {
  return alreadyExists(`Task ${id}: already exists`);
}

function processOf(containerId: string, s: ProcessState): Process {
  return create(ProcessSchema, {
    containerId,
    id: s.execId || s.id,
    pid: s.pid,
    status: s.status,
    stdin: s.stdin,
    stdout: s.stdout,
    stderr: s.stderr,
    terminal: s.terminal,
    exitStatus: s.exitStatus,
    exitedAt: s.exitedAt,
  });
}
