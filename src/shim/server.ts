/**
 * The serving shim: a new session, child subreaper with one reaper, the Task API on its ttrpc socket,
 * events forwarded to the daemon. Exits on Shutdown once it serves no container, and on its own when no
 * container comes after it started.
 */

import { Task } from "../gen/runtime/task/v2/shim_pb.ts";
import { LibcProcessSyscalls } from "../../ffi/process.ts";
import { fdSyscalls, O_NONBLOCK, O_WRONLY } from "../../ffi/fd.ts";
import { socketPath, TtrpcServer } from "../ttrpc/mod.ts";
import type { RuntimeOptions, ShimContext } from "./container.ts";
import { EventPublisher } from "./events.ts";
import type { ShimFlags } from "./flags.ts";
import { liveShimPid } from "../core/runtime/shim_group.ts";
import { cgroupMode } from "./cgroup_mode.ts";
import { OomWatcher } from "./oom.ts";
import { Reaper } from "./reaper.ts";
import { Runc } from "./runc.ts";
import { BackgroundDeletes } from "./runc_fast.ts";
import { TaskService } from "./task_service.ts";
import { IdleCollector } from "../base/idle_gc.ts";
import { releaseStartupPages } from "../base/startup_pages.ts";

/** Writes log lines to the bundle's `log` FIFO that the daemon reads (containerd's shim log); else drops them. */
function openLog(bundle: string, debug: boolean): (msg: string) => void {
  const fds = fdSyscalls();
  let fd = -1;
  try {
    // Only the FIFO the daemon made: a shim started ahead of any container serves from "/", whose `log`
    // (if any) is not ours to write. Non-blocking write end: a daemon that went away must never stall it.
    if (Deno.statSync(`${bundle}/log`).isFifo) fd = fds.open(`${bundle}/log`, O_WRONLY | O_NONBLOCK);
  } catch { /* no reader or no FIFO: no log */ }
  const enc = new TextEncoder();
  return (msg: string) => {
    if (debug) console.error(msg);
    if (fd < 0) return;
    try {
      fds.writeSync(
        fd,
        enc.encode(`time="${new Date().toISOString()}" level=info msg=${JSON.stringify(msg)}\n`),
      );
    } catch { /* EAGAIN / EPIPE: the line is lost, the shim goes on */ }
  };
}

async function listen(server: TtrpcServer, address: string): Promise<boolean> {
  const path = socketPath(address);
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  try {
    server.listen(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    if ((await liveShimPid(address)) !== undefined) return false; // another shim won the race
    await Deno.remove(path);
    server.listen(path);
  }
  await Deno.chmod(path, 0o600);
  return true;
}

/**
 * Tells the process that started this shim that the socket is listening: it reads one line from our
 * stdout instead of polling the socket. Closing stdout afterwards leaves no one holding that pipe.
 */
function announceReady(): void {
  try {
    Deno.stdout.writeSync(new TextEncoder().encode("ready\n"));
  } catch { /* not a pipe, or nobody reads it any more */ }
  try {
    Deno.stdout.close();
  } catch { /* already closed */ }
}

/**
 * How long a shim without containers waits for one before it exits, at the least: its daemon creates
 * the first container right after the shim says it listens, or after probing it with Connect.
 */
const FIRST_TASK_GRACE_MS = 10_000;

export interface ServeOptions {
  /** How long to wait for the first container before exiting; FIRST_TASK_GRACE_MS by default. */
  readonly firstTaskWaitMs?: number;
  /** Settles when the daemon that started this shim ahead of any container has gone: exit unless serving. */
  readonly daemonGone?: Promise<void>;
}

export async function serveShim(flags: ShimFlags, options: ServeOptions = {}): Promise<number> {
  if (!flags.socket) throw new Error("Serving needs -socket");
  const proc = new LibcProcessSyscalls();
  try {
    proc.setsid();
  } catch { /* already a session leader */ }
  const bundle = flags.bundle || Deno.cwd();
  const log = openLog(bundle, flags.debug);
  Deno.chdir("/"); // bundles come and go; the shim outlives the first one

  const reaper = new Reaper({ syscalls: proc });
  reaper.start();
  // The executable's pages go back each time the shim has gone quiet, as the daemon's do.
  const collector = new IdleCollector({ afterEach: () => void releaseStartupPages() });
  const events = new EventPublisher(Deno.env.get("TTRPC_ADDRESS") ?? "", flags.namespace, { log });
  const mode = cgroupMode();
  // The watcher only calls back after a container started, when `service` below is set.
  const oom = new OomWatcher(mode, (id) => service.oom(id));
  const runtimes = new Map<string, Runc>();
  const deletes = new BackgroundDeletes((id, err) =>
    log(`Cannot delete container ${id}: ${(err as Error).message}`)
  );
  const ctx: ShimContext = {
    namespace: flags.namespace,
    deletes,
    reaper,
    events,
    oom,
    proc,
    log,
    runc(o: RuntimeOptions): Runc {
      const key = `${o.binaryName}\0${o.root}\0${o.systemdCgroup}\0${o.runtimeArgs?.join(" ") ?? ""}`;
      let r = runtimes.get(key);
      if (!r) {
        r = new Runc({
          binary: o.binaryName,
          root: o.root,
          systemdCgroup: o.systemdCgroup,
          extraArgs: o.runtimeArgs,
          onSpawn: (child) => reaper.track(child),
        });
        runtimes.set(key, r);
      }
      return r;
    },
  };

  const server = new TtrpcServer({ onError: (err) => log(`ttrpc: ${(err as Error).message}`) });
  let done!: (code: number) => void;
  const finished = new Promise<number>((r) => done = r);
  // An idle shim lingers a little before it exits: back-to-back runs in a namespace then reuse it
  // instead of paying a runtime start each (BERTH_SHIM_IDLE_MS, 0: exit at once).
  const idleMs = Math.max(0, Number(Deno.env.get("BERTH_SHIM_IDLE_MS") ?? 10_000) || 0);
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  let stopping = false;
  const stop = async () => {
    if (stopping || service.size > 0) return;
    stopping = true;
    await server.close({ graceMs: 500 });
    await deletes.settle();
    // runc made a state folder per namespace; once its last container is gone it is empty: leave none.
    for (const r of runtimes.values()) await Deno.remove(r.root).catch(() => {});
    await events.close(1_000);
    oom.close();
    reaper.stop();
    collector.stop();
    done(0);
  };
  const service: TaskService = new TaskService(ctx, {
    cgroupMode: mode,
    onShutdown: (now) => {
      clearTimeout(idleTimer);
      if (idleMs === 0 || now) stop();
      else idleTimer = setTimeout(stop, idleMs);
    },
    // A daemon that just found this shim alive is about to create a container in it: keep waiting.
    onConnect: () => {
      if (idleTimer === undefined || stopping) return;
      clearTimeout(idleTimer);
      idleTimer = setTimeout(stop, Math.max(idleMs, FIRST_TASK_GRACE_MS));
    },
  });
  server.register(Task, service);
  if (!(await listen(server, flags.socket))) {
    reaper.stop();
    collector.stop();
    return 0;
  }
  log(`shim ${Deno.pid} serving ${flags.namespace} on ${flags.socket}`);
  announceReady();
  // Idle from the start: a daemon killed between spawning this shim and its first Create would leave
  // it serving nobody for good (a restarted daemon finds no task in it and forgets it).
  idleTimer = setTimeout(stop, options.firstTaskWaitMs ?? Math.max(idleMs, FIRST_TASK_GRACE_MS));
  options.daemonGone?.then(() => void stop());
  return await finished;
}
