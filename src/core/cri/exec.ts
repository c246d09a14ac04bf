/**
 * Running a process in a CRI container (containerd's execInternal): the container's process spec with
 * other args, a terminal when asked (TERM=xterm), FIFOs the daemon reads and writes through the shared
 * poller, an optional deadline after which the process is killed, and the exec deleted afterwards.
 */
import { deadlineExceeded, failedPrecondition, isNotFound } from "../../base/errors.ts";
import { fdPoller } from "../../base/fd_poller.ts";
import { fdSyscalls, O_NONBLOCK, O_RDWR } from "../../../ffi/fd.ts";
import { fsSyscalls, S_IFIFO } from "../../../ffi/fs.ts";
import type { Spec } from "../../oci/spec.ts";
import { decodeSpec } from "../../oci/spec.ts";
import type { ContainerStore } from "../containers/mod.ts";
import type { ShimTask } from "../runtime/mod.ts";
import { generateId } from "./store.ts";

export interface ExecIo {
  readonly stdin?: ReadableStream<Uint8Array>;
  readonly stdout?: WritableStream<Uint8Array>;
  readonly stderr?: WritableStream<Uint8Array>;
  readonly tty: boolean;
  /** Terminal sizes as the client changes them. */
  readonly resize?: AsyncIterable<{ width: number; height: number }>;
}

export interface ExecRequest extends ExecIo {
  readonly containerId: string;
  readonly cmd: readonly string[];
  /** Kill the process after this long (0: no deadline). */
  readonly timeoutMs?: number;
  /** Kill the process when this aborts (the streaming client went away). */
  readonly signal?: AbortSignal;
}

export interface ExecDeps {
  readonly ns: string;
  readonly containers: ContainerStore;
  readonly task: (containerId: string) => ShimTask;
  /** The container's volatile folder, where the exec FIFOs go. */
  readonly stateOf: (containerId: string) => string;
}

/** Runs `req.cmd` in the container until it exits; returns its exit code. */
export async function execInContainer(deps: ExecDeps, req: ExecRequest): Promise<number> {
  const task = deps.task(req.containerId);
  const record = deps.containers.get(deps.ns, task.id);
  if (!record.spec) throw failedPrecondition(`Container "${task.id}" has no spec`);
  const spec: Spec = decodeSpec(record.spec.value);
  const process = { ...spec.process!, args: [...req.cmd], terminal: req.tty };
  if (req.tty) process.env = [...(process.env ?? []).filter((e) => !e.startsWith("TERM=")), "TERM=xterm"];
  const execId = generateId();
  const dir = `${deps.stateOf(task.id)}/io`;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const paths = {
    stdin: req.stdin ? `${dir}/${execId}-stdin` : "",
    stdout: `${dir}/${execId}-stdout`,
    stderr: req.tty ? "" : `${dir}/${execId}-stderr`,
  };
  for (const p of [paths.stdin, paths.stdout, paths.stderr]) {
    if (p) fsSyscalls().mknod(p, S_IFIFO | 0o700, 0, 0);
  }
  const copies: Promise<void>[] = [];
  const readers: ReadableStream<Uint8Array>[] = [];
  for (const [path, sink] of [[paths.stdout, req.stdout], [paths.stderr, req.stderr]] as const) {
    if (!path) continue;
    const source = fdPoller().open(path);
    readers.push(source);
    copies.push(source.pipeTo(sink ?? new WritableStream(), { preventClose: !sink }).catch(() => {}));
  }
  let stdinFd = -1;
  const cleanup = async () => {
    for (const r of readers) await r.cancel().catch(() => {});
    for (const p of [paths.stdin, paths.stdout, paths.stderr]) if (p) await Deno.remove(p).catch(() => {});
  };
  // Terminal sizes apply once the process exists (runc makes its console at start).
  const started = Promise.withResolvers<void>();
  try {
    const exited = (async () => {
      await task.exec(execId, {
        spec: {
          typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process",
          value: encode(process),
        },
        terminal: req.tty,
        stdin: paths.stdin,
        stdout: paths.stdout,
        stderr: paths.stderr,
      });
      const wait = task.wait(execId);
      // Settled either way: a process that never started has its wait rejected when the shim goes.
      wait.catch(() => {});
      await task.start(execId);
      started.resolve();
      return wait;
    })();
    exited.catch(() => started.reject());
    started.promise.catch(() => {});
    if (req.stdin) {
      // Read and write: opening a FIFO only for writing fails while the shim has not opened it yet.
      stdinFd = fdSyscalls().open(paths.stdin, O_RDWR | O_NONBLOCK);
      copies.push(copyStdin(req.stdin, stdinFd, async () => {
        // The process sees the end of its input once no writer is left: ours, then the shim's. Ours
        // goes only once the shim has the FIFO open, or what is buffered in it would be dropped.
        await started.promise.catch(() => {});
        fdSyscalls().close(stdinFd);
        stdinFd = -1;
        await task.closeIO(execId, { stdin: true }).catch(() => {});
      }));
    }
    if (req.resize) {
      (async () => {
        await started.promise;
        for await (const size of req.resize!) await task.resizePty(execId, size).catch(() => {});
      })().catch(() => {});
    }
    const timeoutMs = req.timeoutMs ?? 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = timeoutMs > 0
      ? new Promise<"late">((r) => timer = setTimeout(() => r("late"), timeoutMs))
      : new Promise<never>(() => {});
    const onAbort = Promise.withResolvers<"aborted">();
    const abort = () => onAbort.resolve("aborted");
    if (req.signal?.aborted) abort();
    req.signal?.addEventListener("abort", abort, { once: true });
    const first = await Promise.race([exited, late, onAbort.promise]).finally(() => {
      clearTimeout(timer);
      req.signal?.removeEventListener("abort", abort);
    });
    if (first === "late" || first === "aborted") {
      await task.kill(9, { execId }).catch((err) => {
        if (!isNotFound(err)) throw err;
      });
      const killed = await exited.catch(() => undefined);
      if (first === "aborted") return killed?.exitStatus ?? 137;
      throw deadlineExceeded(`Timeout ${timeoutMs / 1000}s exceeded: context deadline exceeded`);
    }
    // Output still in the FIFOs is copied before the result is returned.
    await Promise.all(copies.slice(0, readers.length));
    return first.exitStatus;
  } finally {
    await task.deleteProcess(execId).catch(() => {});
    if (stdinFd >= 0) fdSyscalls().close(stdinFd);
    await cleanup();
  }
}

function encode(process: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(process));
}

/** Copies the client's stdin into the FIFO; at its end, the process's stdin is closed. */
async function copyStdin(
  source: ReadableStream<Uint8Array>,
  fd: number,
  close: () => Promise<void>,
): Promise<void> {
  const polled = fdPoller().attach(fd, { read: false });
  try {
    for await (const chunk of source) {
      if (!await polled.write(chunk)) break;
    }
  } catch {
    /* the client went away */
  } finally {
    await polled.release();
    await close();
  }
}
