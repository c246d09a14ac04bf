import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema, type Timestamp, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { now } from "../../base/clock.ts";
import type { BasicLogger as Logger } from "../../base/log.ts";
import { TaskDeleteSchema, TaskExitSchema } from "../../gen/events/task_pb.ts";
import type { Mount } from "../mount/mod.ts";
import { NAMESPACE_METADATA_KEY, TtrpcClient } from "../../ttrpc/mod.ts";
import type { AnyValue } from "../containers/mod.ts";
import { alreadyExists, notFound } from "../../base/errors.ts";
import type { EventPublisher } from "../events/mod.ts";
import { deleteShim, shimCommand, type ShimEnv, startShim } from "./binary.ts";
import type { SpareShims } from "./spare_shim.ts";
import { startShimAhead } from "./shim_group.ts";
import { Bundle } from "./bundle.ts";
import { restoreDir } from "./checkpoint.ts";
import { type NamedRuntime, resolveRuntime } from "./named.ts";
import { ShimLog } from "./shim_log.ts";
import { ShimConnection, ShimTask } from "./task.ts";

export interface CreateTaskOptions {
  /** The OCI runtime spec, JSON. */
  readonly spec: Uint8Array;
  /** The container's root file system, mounted by the shim (none: the bundle's rootfs is used as is). */
  readonly rootfs: readonly Mount[];
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly terminal: boolean;
  /** A CRIU image folder the shim restores the task from at Start. */
  readonly checkpoint?: string;
  /** Fills a folder of the new bundle with the image to restore from; it then is the `checkpoint`. */
  readonly unpackCheckpoint?: (dir: string) => Promise<void>;
  readonly runtime: string;
  readonly runtimeOptions?: AnyValue;
  readonly taskOptions?: AnyValue;
  readonly signal?: AbortSignal;
}

export interface TaskExitInfo {
  readonly pid: number;
  readonly exitStatus: number;
  /** As the shim reported it, to the nanosecond. */
  readonly exitedAt?: Timestamp;
}

export interface TaskManagerOptions {
  /** `<root>/io.containerd.runtime.v2.task`: work folders. */
  readonly root: string;
  /** `<state>/io.containerd.runtime.v2.task`: bundles. */
  readonly state: string;
  readonly env: ShimEnv;
  readonly events: EventPublisher;
  readonly log: Logger;
  /** Runtime name → shim binary (Berth's `shim_binaries` config key). */
  readonly shimBinaries?: Readonly<Record<string, string>>;
  readonly startTimeoutMs?: number;
  /** Spare shims the first container of a namespace may adopt instead of starting one. */
  readonly spares?: SpareShims;
}

/**
 * containerd's runtime v2 task manager: makes bundles, starts shims (or reuses a shared one whose
 * address `start` printed), keeps one ttrpc connection per shim, reattaches after a restart and cleans
 * up after shims that died.
 */
export class TaskManager {
  readonly #opts: TaskManagerOptions;
  readonly #tasks = new Map<string, ShimTask>();
  readonly #conns = new Map<string, ShimConnection>();
  readonly #creating = new Set<string>();
  /** Clean-up still running after a Delete was answered, by task key. */
  readonly #finishing = new Map<string, Promise<void>>();
  #closed = false;
  /** Runtimes configured by name, set by the CRI plugin from its `runtimes` tables. */
  #named: ReadonlyMap<string, NamedRuntime> = new Map();
  /** Shims told to shut down while idle, which may linger for a next task: address → namespace. */
  readonly #lingering = new Map<string, string>();

  constructor(options: TaskManagerOptions) {
    this.#opts = options;
  }

  /**
   * Lets containers name a configured runtime (`ctr run --runtime gvisor`) as CRI pods do: it resolves
   * to that runtime's shim and options. The CRI plugin owns the config, so it hands the table over.
   */
  useNamedRuntimes(runtimes: ReadonlyMap<string, NamedRuntime>): void {
    this.#named = runtimes;
  }

  /**
   * Starts the shim of namespace `ns` before its first container, from a spare shim (an image is
   * arriving there). Until a container comes it lingers as an idle shim does: close() stops it.
   */
  async startShimAhead(ns: string): Promise<void> {
    if (!this.#opts.spares || this.#closed) return;
    const address = await startShimAhead(this.#opts.env.address, ns, this.#opts.spares);
    if (address !== undefined && !this.#conns.has(address)) this.#lingering.set(address, ns);
  }

  get(ns: string, id: string): ShimTask {
    const t = this.#tasks.get(key(ns, id));
    if (!t) throw notFound(`Task "${id}" not found`);
    return t;
  }

  has(ns: string, id: string): boolean {
    return this.#tasks.has(key(ns, id)) || this.#creating.has(key(ns, id));
  }

  list(ns: string): ShimTask[] {
    return [...this.#tasks.values()].filter((t) => t.namespace === ns);
  }

  /** How many tasks the daemon runs, in every namespace. */
  get taskCount(): number {
    return this.#tasks.size;
  }

  /** How many shim processes the daemon is connected to. */
  get shimCount(): number {
    return this.#conns.size;
  }

  /** Every task of every namespace. */
  all(): ShimTask[] {
    return [...this.#tasks.values()];
  }

  /** The shims the daemon is connected to, each with how many tasks it serves. */
  shims(): { address: string; tasks: number }[] {
    return [...this.#conns.values()].map((c) => ({ address: c.address, tasks: c.tasks.size }));
  }

  async create(ns: string, id: string, opts: CreateTaskOptions): Promise<{ task: ShimTask; pid: number }> {
    const k = key(ns, id);
    if (this.has(ns, id)) throw alreadyExists(`Task "${id}": already exists`);
    this.#creating.add(k);
    try {
      const runtime = resolveRuntime(opts.runtime, opts.runtimeOptions, this.#named);
      const command = shimCommand(runtime.runtime, this.#opts.shimBinaries ?? {});
      let bundle: Bundle;
      try {
        bundle = await Bundle.create(this.#opts, ns, { id, spec: opts.spec });
      } catch (err) {
        if (err instanceof Deno.errors.AlreadyExists) {
          throw alreadyExists(`Task "${id}": a bundle already exists`);
        }
        throw err;
      }
      let log: ShimLog | undefined;
      let conn: ShimConnection | undefined;
      let task: ShimTask | undefined;
      try {
        let checkpoint = opts.checkpoint ?? "";
        if (opts.unpackCheckpoint) {
          checkpoint = restoreDir(bundle.path);
          await Deno.mkdir(checkpoint, { mode: 0o700 });
          await opts.unpackCheckpoint(checkpoint);
        }
        bundle.writeShimRecord({ runtime: runtime.runtime, command });
        log = await ShimLog.open(bundle.path, this.#opts.log, id);
        const topts = opts.taskOptions ?? runtime.options;
        const address = await startShim(command, bundle, {
          env: this.#opts.env,
          options: topts ? encodeAny(topts) : undefined,
          timeoutMs: this.#opts.startTimeoutMs,
          spares: this.#opts.spares,
        });
        bundle.writeAddress(address);
        conn = await this.#connect(ns, address, { claim: true });
        task = new ShimTask(bundle, { runtime: runtime.runtime, command, conn, log });
        conn.tasks.add(task);
        conn.claims--;
        const pid = await task.create({
          rootfs: opts.rootfs,
          terminal: opts.terminal,
          stdin: opts.stdin,
          stdout: opts.stdout,
          stderr: opts.stderr,
          checkpoint,
          options: topts,
        }, { signal: opts.signal });
        this.#tasks.set(k, task);
        return { task, pid };
      } catch (err) {
        if (conn && task) {
          await conn.task.delete({ id }, { timeoutMs: 5000 }).catch(() => {});
          conn.tasks.delete(task);
          await this.#shutdownIfIdle(conn, ns, id);
        }
        await log?.close();
        await bundle.delete().catch((e) =>
          this.#opts.log.warn("cannot remove bundle", { id, error: (e as Error).message })
        );
        throw err;
      }
    } finally {
      this.#creating.delete(k);
    }
  }

  /** Deletes the task's init process in the shim, stops the shim when idle, removes the bundle. */
  async delete(ns: string, id: string): Promise<TaskExitInfo> {
    const t = this.get(ns, id);
    if (t.deleted) throw notFound(`Task ${id} not found: it was deleted`);
    let res;
    try {
      res = await t.conn.task.delete({ id }, { timeoutMs: 30_000 });
    } catch (err) {
      // Deleted meanwhile by another caller (a TaskExit handler racing a stop): its delete may have
      // closed the idle shim's connection under ours. That is a task not found, not an unavailable shim.
      if (t.deleted) throw notFound(`Task ${id} not found: it was deleted`, { cause: err });
      throw err;
    }
    t.markDeleted();
    const k = key(ns, id);
    this.#tasks.delete(k);
    t.conn.tasks.delete(t);
    // The bundle is gone when the caller hears back, as on containerd; stopping an idle shim (a call
    // to it, ~2 ms) and closing its log happen after the answer. close() waits for them.
    await t.bundle.delete();
    const finishing: Promise<void> = (async () => {
      await this.#shutdownIfIdle(t.conn, ns, id);
      await t.log?.close();
    })().catch((err) =>
      this.#opts.log.warn("cannot clean up after task", { namespace: ns, id, error: (err as Error).message })
    ).finally(() => {
      if (this.#finishing.get(k) === finishing) this.#finishing.delete(k);
    });
    this.#finishing.set(k, finishing);
    return {
      pid: res.pid,
      exitStatus: res.exitStatus,
      exitedAt: res.exitedAt,
    };
  }

  /** Reattaches to the shims recorded in the bundles; cleans up after those that are gone. */
  async restore(): Promise<void> {
    for await (const nsEntry of readDirSafe(this.#opts.state)) {
      if (!nsEntry.isDirectory) continue;
      const ns = nsEntry.name;
      for await (const entry of readDirSafe(`${this.#opts.state}/${ns}`)) {
        if (!entry.isDirectory) continue;
        const bundle = new Bundle(this.#opts.state, ns, entry.name);
        try {
          await this.#restoreOne(bundle);
        } catch (err) {
          this.#opts.log.warn("cannot restore task", {
            namespace: ns,
            id: bundle.id,
            error: (err as Error).message,
          });
        }
      }
    }
  }

  async #restoreOne(bundle: Bundle): Promise<void> {
    const log = this.#opts.log;
    const record = await bundle.readShimRecord();
    const address = await bundle.readAddress();
    if (!record) {
      log.warn("removing bundle without shim record", { id: bundle.id });
      await bundle.delete();
      return;
    }
    let conn: ShimConnection | undefined;
    if (address) {
      try {
        conn = await this.#connect(bundle.namespace, address);
        await conn.task.state({ id: bundle.id }, { timeoutMs: 5000 });
      } catch (err) {
        log.info("shim of task is gone", { id: bundle.id, error: (err as Error).message });
        if (conn && conn.tasks.size === 0) this.#dropConn(conn);
        conn = undefined;
      }
    }
    if (!conn) {
      await this.#cleanupDeadShim(bundle, record.command);
      return;
    }
    const shimLog = await ShimLog.open(bundle.path, log, bundle.id).catch(() => undefined);
    const task = new ShimTask(bundle, {
      runtime: record.runtime,
      command: record.command,
      conn,
      log: shimLog,
    });
    conn.tasks.add(task);
    this.#tasks.set(key(bundle.namespace, bundle.id), task);
    log.info("reconnected to shim", { namespace: bundle.namespace, id: bundle.id, address });
  }

  async close(): Promise<void> {
    await Promise.all(this.#finishing.values());
    this.#closed = true;
    await this.#opts.spares?.close();
    await Promise.all([...this.#lingering].map(([address, ns]) => stopIdleShim(address, ns)));
    this.#lingering.clear();
    for (const c of this.#conns.values()) {
      c.closing = true;
      c.client.close();
    }
    this.#conns.clear();
    for (const t of this.#tasks.values()) await t.log?.close();
  }

  /**
   * The connection to the shim at `address`, reused while it is open. `claim` marks it in use by a task
   * about to be added (the caller drops the claim once it is): an idle check in between must not close it.
   */
  async #connect(ns: string, address: string, options: { claim?: boolean } = {}): Promise<ShimConnection> {
    this.#lingering.delete(address);
    const claimed = (c: ShimConnection) => {
      if (options.claim) c.claims++;
      return c;
    };
    const existing = this.#conns.get(address);
    if (existing && !existing.closing) return claimed(existing);
    const client = await TtrpcClient.connect(address, {
      metadata: { [NAMESPACE_METADATA_KEY]: ns },
      timeoutMs: 30_000,
    });
    const again = this.#conns.get(address);
    if (again && !again.closing) {
      client.close();
      return claimed(again);
    }
    const conn = claimed(new ShimConnection(address, client));
    this.#conns.set(address, conn);
    client.closed.then(() => this.#onConnClosed(conn));
    return conn;
  }

  #dropConn(conn: ShimConnection): void {
    conn.closing = true;
    if (this.#conns.get(conn.address) === conn) this.#conns.delete(conn.address);
    conn.client.close();
  }

  async #shutdownIfIdle(conn: ShimConnection, ns: string, id: string): Promise<void> {
    if (conn.tasks.size > 0 || conn.claims > 0 || conn.closing) return;
    conn.closing = true;
    // The shim exits while answering (or lingers idle a little, for the next task), so a lost answer
    // is expected. A daemon that stops tells lingering shims to go at once (close()).
    await conn.task.shutdown({ id, now: false }, { timeoutMs: 3000 }).catch(() => {});
    this.#lingering.set(conn.address, ns);
    this.#dropConn(conn);
  }

  async #onConnClosed(conn: ShimConnection): Promise<void> {
    if (this.#conns.get(conn.address) === conn) this.#conns.delete(conn.address);
    if (conn.closing || this.#closed) return;
    for (const t of [...conn.tasks]) {
      conn.tasks.delete(t);
      this.#tasks.delete(key(t.namespace, t.id));
      await t.log?.close();
      await this.#cleanupDeadShim(t.bundle, t.command).catch((err) =>
        this.#opts.log.warn("cleanup after dead shim failed", { id: t.id, error: (err as Error).message })
      );
    }
  }

  /** containerd's cleanupAfterDeadShim: `shim delete`, then a TaskExit (255 unless told) and a TaskDelete. */
  async #cleanupDeadShim(bundle: Bundle, command: readonly string[]): Promise<void> {
    const log = this.#opts.log;
    log.info("cleaning up dead shim", { namespace: bundle.namespace, id: bundle.id });
    let exit: TaskExitInfo = { pid: 0, exitStatus: 255, exitedAt: nowTimestamp() };
    try {
      const res = await deleteShim(command, bundle, { env: this.#opts.env });
      exit = {
        pid: res.pid,
        exitStatus: res.exitStatus,
        exitedAt: res.exitedAt ?? nowTimestamp(),
      };
    } catch (err) {
      log.warn("shim delete failed", { id: bundle.id, error: (err as Error).message });
    }
    await bundle.delete();
    const at = exit.exitedAt ?? nowTimestamp();
    this.#opts.events.publish(bundle.namespace, "/tasks/exit", TaskExitSchema, {
      containerId: bundle.id,
      id: bundle.id,
      pid: exit.pid,
      exitStatus: exit.exitStatus,
      exitedAt: at,
    });
    this.#opts.events.publish(bundle.namespace, "/tasks/delete", TaskDeleteSchema, {
      containerId: bundle.id,
      pid: exit.pid,
      exitStatus: exit.exitStatus,
      exitedAt: at,
    });
  }
}

/** The current time as a protobuf Timestamp, to the nanosecond. */
function nowTimestamp(): Timestamp {
  const t = now();
  return create(TimestampSchema, { seconds: t / 1_000_000_000n, nanos: Number(t % 1_000_000_000n) });
}

function key(ns: string, id: string): string {
  return `${ns}/${id}`;
}

async function* readDirSafe(path: string): AsyncIterable<Deno.DirEntry> {
  try {
    yield* Deno.readDir(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/** A google.protobuf.Any in its wire form, which a shim reads from stdin at `start`. */
function encodeAny(a: AnyValue): Uint8Array {
  return toBinary(AnySchema, create(AnySchema, { typeUrl: a.typeUrl, value: a.value }));
}

/**
 * Asks an idle shim to exit now and waits until its process is gone (5 s at most): it finishes the
 * background deletes of its last containers (runc state, cgroups) before it exits.
 */
async function stopIdleShim(address: string, ns: string): Promise<void> {
  let client: TtrpcClient | undefined;
  try {
    client = await TtrpcClient.connect(address, {
      metadata: { [NAMESPACE_METADATA_KEY]: ns },
      timeoutMs: 1000,
    });
    const conn = new ShimConnection(address, client);
    const { shimPid } = await conn.task.connect({ id: "" }, { timeoutMs: 1000 });
    await conn.task.shutdown({ id: "", now: true }, { timeoutMs: 1000 }).catch(() => {});
    const deadline = Date.now() + 5000;
    while (shimPid > 0 && Date.now() < deadline && await processExists(shimPid)) {
      await new Promise((r) => setTimeout(r, 20));
    }
  } catch {
    // Gone already.
  } finally {
    client?.close();
  }
}

async function processExists(pid: number): Promise<boolean> {
  try {
    // A zombie is gone for our purpose: its state letter is Z.
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z/s.test(stat);
  } catch {
    return false;
  }
}
