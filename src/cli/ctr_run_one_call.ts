/**
 * `ctr run` in one call to the daemon's Run service (berth.run.v1): the daemon creates the container and
 * its task, starts, waits for and deletes it, making ctr's ~30 calls on its own API; this process makes
 * the FIFOs, moves the stdio, relays signals and exits with the status. ctr's way costs a CLI that has
 * just started ~30 ms more: every call runs cold code here, and the image and spec code must load first.
 * The call's two messages are encoded here (run_wire.ts) and sent with serverStreamBytes, so this path
 * loads neither the protobuf runtime nor connect-es until something fails or a signal is relayed.
 * A terminal (-t) takes the long way (window sizes, raw mode), as does an image that is missing or not
 * unpacked (the long way pulls it with progress), and a daemon without the Run service (containerd).
 */
import type { Client } from "@connectrpc/connect";
import type { ApiConnection } from "../client/connection.ts";
import { serverStreamBytes } from "../client/bytes_call.ts";
import type { Tasks } from "../gen/services/tasks/v1/tasks_pb.ts";
import type { ClientOptions } from "./global_flags.ts";
import type { CtrRun } from "./ctr_run_fast.ts";
import { exitWith } from "./exit.ts";
import { decodeRunEvent, encodeRunRequest } from "./run_wire.ts";
import { attachLocal, OUTPUT_DRAIN_MS, relay, type TaskControl } from "./task_attach.ts";
import { createFifoSet, holdFifos, stdinIsDevNull } from "./host/stdio.ts";

/** Whether runInOneCall() serves these flags. */
export function servesInOneCall(run: CtrRun): boolean {
  return !run.flags.tty;
}

/**
 * Runs the container in one call; false, having changed nothing, when the image first needs a pull or an
 * unpack (the caller takes the long way then).
 */
export async function runInOneCall(run: CtrRun): Promise<boolean> {
  const { flags, globals } = run;
  if (flags.rm && flags.detach) throw new Error("Flags --detach and --rm cannot be specified together");
  const envFile = flags.envFile !== undefined ? await Deno.readTextFile(flags.envFile) : undefined;
  let conn: Promise<ApiConnection> | undefined;
  try {
    const code = await runOn(globals, () => conn ??= connectionFor(globals), run, envFile);
    if (code === undefined) return false;
    exitWith(code);
    return true;
  } finally {
    if (conn) (await conn).close();
  }
}

/** A connection for the Tasks calls, made on the first (a signal to relay, stdin's end). */
async function connectionFor(globals: ClientOptions): Promise<ApiConnection> {
  return (await import("./api_connection.ts")).connectionOf(globals);
}

/** The Tasks calls of attaching and relaying, their descriptors loaded on the first one. */
function lazyTasks(connection: () => Promise<ApiConnection>): TaskControl {
  let tasks: Promise<Client<typeof Tasks>> | undefined;
  const get = () =>
    tasks ??= Promise.all([connection(), import("../gen/services/tasks/v1/tasks_pb.ts")])
      .then(([conn, m]) => conn.service(m.Tasks));
  return {
    closeIO: async (req, options) => (await get()).closeIO(req, options),
    kill: async (req, options) => (await get()).kill(req, options),
    resizePty: async (req, options) => (await get()).resizePty(req, options),
  };
}

/** The exit status, 0 once detached, or undefined when the long way must run it. */
async function runOn(
  globals: ClientOptions,
  connection: () => Promise<ApiConnection>,
  run: CtrRun,
  envFile: string | undefined,
): Promise<number | undefined> {
  const { ref, id, args, flags } = run;
  const tasks = lazyTasks(connection);
  // Detached, the stdin FIFO stays for a later `tasks attach` to type into.
  const fifos = flags.nullIo ? undefined : await createFifoSet(id, {
    terminal: false,
    root: flags.fifoDir,
    stdin: !!flags.detach || !stdinIsDevNull(),
  });
  const local = fifos && !flags.detach ? attachLocal(tasks, fifos, id) : undefined;
  // Detached, nobody reads: hold the output FIFOs open until the task started (see runTask).
  const release = fifos && flags.detach ? holdFifos([fifos.stdout, fifos.stderr]) : () => {};
  let stopRelay = () => {};
  // A detached task keeps its FIFOs (a later `tasks attach` opens them), as with runTask.
  let keepFifos = false;
  try {
    const request = encodeRunRequest({
      image: ref,
      id,
      args,
      flags: {
        env: flags.env ?? [],
        envFile,
        mount: flags.mount ?? [],
        label: flags.label ?? [],
        annotation: flags.annotation ?? [],
        memoryLimit: flags.memoryLimit ?? "",
        cpus: flags.cpus ?? "",
        cpuShares: flags.cpuShares ?? "",
        pidsLimit: flags.pidsLimit ?? "",
        snapshotter: flags.snapshotter,
        runtime: flags.runtime,
        netHost: !!flags.netHost,
        hostname: flags.hostname ?? "",
        user: flags.user ?? "",
        cwd: flags.cwd ?? "",
        readOnly: !!flags.readOnly,
        capAdd: flags.capAdd ?? [],
        capDrop: flags.capDrop ?? [],
        cgroup: flags.cgroup,
      },
      stdin: fifos?.stdin ?? "",
      stdout: fifos?.stdout ?? "",
      stderr: fifos?.stderr ?? "",
      detach: !!flags.detach,
      remove: !!flags.rm,
    });
    const events = serverStreamBytes({
      address: globals.address,
      namespace: globals.namespace,
      path: "/berth.run.v1.Run/Run",
      request,
    });
    let started = false;
    try {
      for await (const message of events) {
        const event = decodeRunEvent(message);
        switch (event.case) {
          case "imageNotReady":
            return undefined;
          case "started":
            started = true;
            if (flags.detach) {
              keepFifos = true;
              return 0;
            }
            stopRelay = relay(tasks, id, "", false);
            break;
          case "exited":
            await local?.io.wait(OUTPUT_DRAIN_MS);
            return event.value;
        }
      }
    } catch (err) {
      // A daemon without the Run service (containerd, an older Berth): the long way.
      if (!started && await isUnimplemented(err)) return undefined;
      throw err;
    }
    throw new Error(`Container "${id}": the daemon's run ended without the task's exit`);
  } finally {
    stopRelay();
    local?.detach();
    release();
    if (fifos && !keepFifos) await Deno.remove(fifos.dir, { recursive: true }).catch(() => {});
  }
}

async function isUnimplemented(err: unknown): Promise<boolean> {
  const { Code, ConnectError } = await import("@connectrpc/connect");
  return err instanceof ConnectError && err.code === Code.Unimplemented;
}
