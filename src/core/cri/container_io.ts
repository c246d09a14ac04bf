/**
 * A CRI container's stdio as the daemon holds it: FIFOs the shim writes (stdin only when asked for;
 * stderr only without a terminal), copied into the CRI log file, fanned out to attached clients, and
 * a stdin the daemon keeps open for attach.
 */
import { fdPoller, type PolledFd } from "../../base/fd_poller.ts";
import { fdSyscalls, O_NONBLOCK, O_RDWR } from "../../../ffi/fd.ts";
import { fsSyscalls, S_IFIFO } from "../../../ffi/fs.ts";
import type { ContainerConfig } from "../../gen/k8s/cri/runtime/v1/api_pb.ts";
import { CriLogFile, redirectLogs } from "./logs.ts";

/** The log copiers of a running container. */
export interface ContainerIo {
  readonly done: Promise<void>;
  close(): Promise<void>;
  reopen(): Promise<void>;
  /** Attach: the client sees the output from now on and writes the container's stdin. */
  attach(io: AttachIo): Promise<void>;
}

export interface AttachIo {
  readonly stdin?: ReadableStream<Uint8Array>;
  readonly stdout?: WritableStream<Uint8Array>;
  readonly stderr?: WritableStream<Uint8Array>;
  /** Ends the attachment (the client went away); the container goes on. */
  readonly signal?: AbortSignal;
}

/**
 * One stream to many readers: each subscriber gets the chunks that arrive after it subscribed. A lossless
 * subscriber (the log) slows the source down; an attached client that cannot keep up loses output rather
 * than stalling the log.
 */
export class Fanout {
  readonly #subs = new Set<{ ctl: ReadableStreamDefaultController<Uint8Array>; lossless: boolean }>();
  #ended = false;

  constructor(source: ReadableStream<Uint8Array>) {
    this.#pump(source);
  }

  subscribe(options: { lossless?: boolean } = {}): ReadableStream<Uint8Array> {
    let sub: { ctl: ReadableStreamDefaultController<Uint8Array>; lossless: boolean };
    return new ReadableStream<Uint8Array>({
      start: (ctl) => {
        sub = { ctl, lossless: options.lossless ?? false };
        if (this.#ended) ctl.close();
        else this.#subs.add(sub);
      },
      cancel: () => {
        this.#subs.delete(sub);
      },
    }, { highWaterMark: 64 });
  }

  async #pump(source: ReadableStream<Uint8Array>): Promise<void> {
    try {
      for await (const chunk of source) {
        for (const s of this.#subs) {
          if (!s.lossless && (s.ctl.desiredSize ?? 0) <= 0) continue;
          try {
            s.ctl.enqueue(chunk);
          } catch {
            this.#subs.delete(s);
          }
        }
        // Back-pressure from the log only.
        while ([...this.#subs].some((s) => s.lossless && (s.ctl.desiredSize ?? 1) <= 0)) {
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    } catch { /* source cancelled */ }
    this.#ended = true;
    for (const s of this.#subs) {
      try {
        s.ctl.close();
      } catch { /* cancelled */ }
    }
    this.#subs.clear();
  }
}

export interface ContainerIoOptions {
  readonly id: string;
  /** The folder for the FIFOs (the container's volatile state). */
  readonly dir: string;
  readonly config: ContainerConfig;
  /** The CRI log file; none when the pod or container sets no log path. */
  readonly logPath: string;
  readonly maxLogLineSize: number;
  /** After a daemon restart: the FIFOs exist already and are reused. */
  readonly reattach?: boolean;
}

export interface ContainerFifos {
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
}

/** Makes (or, reattaching, reuses) the container's FIFOs and starts copying them. */
export async function openContainerIo(
  o: ContainerIoOptions,
): Promise<{ paths: ContainerFifos; io: ContainerIo }> {
  const { id, dir } = o;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const cfg = o.config;
  const paths = {
    stdin: cfg.stdin ? `${dir}/${id}-stdin` : "",
    stdout: `${dir}/${id}-stdout`,
    stderr: cfg.tty ? "" : `${dir}/${id}-stderr`,
  };
  for (const p of [paths.stdin, paths.stdout, paths.stderr]) {
    if (p === "") continue;
    try {
      fsSyscalls().mknod(p, S_IFIFO | 0o700, 0, 0);
    } catch (err) {
      // A restart reattaching to a running container reuses its FIFOs.
      if (!o.reattach || !(await Deno.lstat(p).then((s) => s.isFifo, () => false))) throw err;
    }
  }
  const log = o.logPath ? await CriLogFile.open(o.logPath) : undefined;
  const maxLen = o.maxLogLineSize;
  const readers: ReadableStream<Uint8Array>[] = [];
  const copies: Promise<void>[] = [];
  const fanouts: Partial<Record<"stdout" | "stderr", Fanout>> = {};
  for (const [path, stream] of [[paths.stdout, "stdout"], [paths.stderr, "stderr"]] as const) {
    if (path === "") continue;
    const source = fdPoller().open(path);
    readers.push(source);
    // The log gets every byte; attached clients get what comes while they are attached.
    const fanout = new Fanout(source);
    fanouts[stream] = fanout;
    const toLog = fanout.subscribe({ lossless: true });
    copies.push(
      log ? redirectLogs(toLog, log, stream, maxLen).catch(() => {}) : toLog.pipeTo(new WritableStream()),
    );
  }
  // The daemon holds the stdin FIFO open for attach, read and write so the open does not wait for the
  // shim; closing it is the container's end of input.
  let stdin: { fd: number; polled: PolledFd } | undefined;
  if (paths.stdin) {
    const fd = fdSyscalls().open(paths.stdin, O_RDWR | O_NONBLOCK);
    stdin = { fd, polled: fdPoller().attach(fd, { read: false }) };
  }
  const closeStdin = async () => {
    if (!stdin) return;
    const s = stdin;
    stdin = undefined;
    await s.polled.release();
    fdSyscalls().close(s.fd);
  };
  const done = Promise.all(copies).then(() => {});
  const io: ContainerIo = {
    done,
    close: async () => {
      await closeStdin();
      for (const r of readers) await r.cancel().catch(() => {});
      await done.catch(() => {});
      await log?.close();
    },
    reopen: () => log?.reopen() ?? Promise.resolve(),
    attach: async (io) => {
      const outs: Promise<void>[] = [];
      if (io.stdout && fanouts.stdout) {
        outs.push(fanouts.stdout.subscribe().pipeTo(io.stdout).catch(() => {}));
      }
      if (io.stderr && fanouts.stderr) {
        outs.push(fanouts.stderr.subscribe().pipeTo(io.stderr).catch(() => {}));
      }
      let input: Promise<void> = Promise.resolve();
      if (io.stdin && stdin) {
        const target = stdin.polled;
        input = (async () => {
          try {
            for await (const chunk of io.stdin!) if (!await target.write(chunk)) break;
          } catch { /* the client went away */ }
          if (cfg.stdinOnce && !cfg.tty) await closeStdin();
        })();
      }
      // containerd's attach: with stdin_once (and no terminal) the end of the client's input is the
      // container's, and the client sees its output to the end; otherwise the end of the client's
      // input ends the attachment. Either way the container's exit ends it.
      const inputEnds = io.stdin && !(cfg.stdinOnce && !cfg.tty);
      const gone = new Promise<void>((resolve) => {
        if (io.signal?.aborted) resolve();
        io.signal?.addEventListener("abort", () => resolve(), { once: true });
      });
      await Promise.race([Promise.all(outs), inputEnds ? input : new Promise<void>(() => {}), gone]);
    },
  };
  return { paths, io };
}
