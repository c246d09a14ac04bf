/**
 * The CLI's side of a process's stdio, as containerd's cio: FIFOs `<id>-stdin|stdout|stderr` in a fresh
 * folder under the FIFO root, named to the daemon in Tasks.Create / Exec; the shim opens the other ends.
 * Also the local terminal (raw mode, window size) and signal forwarding of `run`, `start`, `exec`, `attach`.
 */
import { type FdSyscalls, fdSyscalls, O_NONBLOCK, O_RDONLY, O_WRONLY } from "../../../ffi/fd.ts";
import { fsSyscalls, S_IFIFO } from "../../../ffi/fs.ts";
import { SIGNALS } from "../../base/signals.ts";

export interface FifoSet {
  readonly dir: string;
  readonly stdin: string;
  readonly stdout: string;
  /** Empty with a terminal: the pty merges both outputs. */
  readonly stderr: string;
  readonly terminal: boolean;
}

/** containerd uses /run/containerd/fifo; Berth its own root, or the user's runtime folder when not root. */
export function defaultFifoRoot(): string {
  if (Deno.uid() === 0) return "/run/berth/fifo";
  const xdg = Deno.env.get("XDG_RUNTIME_DIR");
  return xdg ? `${xdg}/berth/fifo` : `${Deno.env.get("TMPDIR") ?? "/tmp"}/berth-fifo-${Deno.uid()}`;
}

/** Makes the FIFOs of one process in a new private folder under `root`. */
export async function createFifoSet(
  id: string,
  options: { terminal: boolean; root?: string; stdin?: boolean },
): Promise<FifoSet> {
  const root = options.root || defaultFifoRoot();
  await Deno.mkdir(root, { recursive: true, mode: 0o700 });
  const dir = await Deno.makeTempDir({ dir: root });
  const set: FifoSet = {
    dir,
    stdin: options.stdin === false ? "" : `${dir}/${id}-stdin`,
    stdout: `${dir}/${id}-stdout`,
    stderr: options.terminal ? "" : `${dir}/${id}-stderr`,
    terminal: options.terminal,
  };
  try {
    for (const p of [set.stdin, set.stdout, set.stderr]) if (p) fsSyscalls().mknod(p, S_IFIFO | 0o700, 0, 0);
  } catch (err) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw new Error(`Cannot create the stdio FIFOs in ${dir}: ${(err as Error).message}`);
  }
  return set;
}

/**
 * Whether this process's stdin is /dev/null (scripts, CI, `< /dev/null`). An attached task then gets no
 * stdin FIFO: its stdin would only reach end of file at once, after a FIFO, a copy and a CloseIO call.
 */
export function stdinIsDevNull(): boolean {
  try {
    return Deno.readLinkSync("/proc/self/fd/0") === "/dev/null";
  } catch {
    return false;
  }
}

/** Removes a FIFO folder made by createFifoSet (only ever a folder directly under a FIFO root). */
export async function removeFifoDir(path: string): Promise<void> {
  if (!path) return;
  await Deno.remove(path.replace(/\/[^/]+$/, ""), { recursive: true }).catch(() => {});
}

/** Whether `path` is one of our FIFOs (so that removing its folder is safe). */
export function isOwnFifo(path: string): boolean {
  return path !== "" && path.startsWith(`${defaultFifoRoot()}/`);
}

/**
 * Opens the read ends of output FIFOs without blocking and keeps them until the returned function runs,
 * so that a detached task's shim finds a reader when it opens them (ctr holds them while it lives).
 */
export function holdFifos(paths: readonly string[], sys: FdSyscalls = fdSyscalls()): () => void {
  const fds: number[] = [];
  const release = () => {
    for (const fd of fds.splice(0)) sys.close(fd);
  };
  try {
    for (const p of paths) if (p) fds.push(sys.open(p, O_RDONLY | O_NONBLOCK));
  } catch (err) {
    release();
    throw err;
  }
  return release;
}

export interface StdioStreams {
  /** Copied into the process's stdin; at its end the FIFO is closed and `onStdinEnd` runs. */
  readonly stdin?: ReadableStream<Uint8Array>;
  readonly stdout: { writeSync(p: Uint8Array): number };
  readonly stderr: { writeSync(p: Uint8Array): number };
  readonly onStdinEnd?: () => void;
}

/**
 * Opens the client ends of a FIFO set and copies. Opening a FIFO waits for its peer, so every open runs
 * in the background; cancel() wakes opens whose peer never came (the task failed to start).
 */
export class AttachedIO {
  readonly #set: FifoSet;
  readonly #sys: FdSyscalls;
  readonly #outputs: Promise<void>;
  readonly #files: Deno.FsFile[] = [];
  #cancelled = false;

  constructor(set: FifoSet, streams: StdioStreams, sys: FdSyscalls = fdSyscalls()) {
    this.#set = set;
    this.#sys = sys;
    const outs: Promise<void>[] = [this.#copyOut(set.stdout, streams.stdout)];
    if (set.stderr) outs.push(this.#copyOut(set.stderr, streams.stderr));
    this.#outputs = Promise.all(outs).then(() => {});
    if (set.stdin && streams.stdin) this.#copyIn(set.stdin, streams.stdin, streams.onStdinEnd);
  }

  async #open(path: string, write: boolean): Promise<Deno.FsFile | undefined> {
    try {
      const f = await Deno.open(path, write ? { write: true } : { read: true });
      if (this.#cancelled) {
        f.close();
        return undefined;
      }
      this.#files.push(f);
      return f;
    } catch {
      return undefined;
    }
  }

  async #copyOut(path: string, out: { writeSync(p: Uint8Array): number }): Promise<void> {
    const f = await this.#open(path, false);
    if (!f) return;
    const buf = new Uint8Array(32 * 1024);
    try {
      for (;;) {
        const n = await f.read(buf);
        if (n === null) break;
        let off = 0;
        while (off < n) off += out.writeSync(buf.subarray(off, n));
      }
    } catch {
      // closed by close(), or the terminal went away
    }
  }

  async #copyIn(path: string, input: ReadableStream<Uint8Array>, onEnd?: () => void): Promise<void> {
    const f = await this.#open(path, true);
    if (!f) return;
    try {
      for await (const chunk of input) {
        let off = 0;
        while (off < chunk.length) off += await f.write(chunk.subarray(off));
      }
    } catch {
      return;
    }
    try {
      f.close();
    } catch { /* closed by close() */ }
    onEnd?.();
  }

  /** Resolves when the shim closed every output (all written), or after `timeoutMs`. */
  async wait(timeoutMs: number): Promise<void> {
    // Not setTimeout: Deno's global timers are node:timers, whose first use loads Node's compatibility
    // modules (timers, async_hooks, errors, inspect: ~5 ms of a `ctr run`). AbortSignal.timeout's timer
    // does not hold the process open.
    const late = AbortSignal.timeout(timeoutMs);
    await Promise.race([
      this.#outputs,
      new Promise((r) => late.addEventListener("abort", r, { once: true })),
    ]);
  }

  /** Wakes pending opens by briefly being their peer, then closes everything. */
  close(): void {
    this.#cancelled = true;
    const wake = (path: string, flags: number) => {
      try {
        this.#sys.close(this.#sys.open(path, flags | O_NONBLOCK));
      } catch { /* ENXIO: nobody waiting */ }
    };
    for (const p of [this.#set.stdout, this.#set.stderr]) if (p) wake(p, O_WRONLY);
    if (this.#set.stdin) wake(this.#set.stdin, O_RDONLY);
    for (const f of this.#files.splice(0)) {
      try {
        f.close();
      } catch { /* already closed */ }
    }
  }
}

/** The local terminal in raw mode (ctr's console.SetRaw); the returned function restores it. */
export function enterRawMode(): () => void {
  if (!Deno.stdin.isTerminal()) return () => {};
  Deno.stdin.setRaw(true);
  return () => {
    try {
      Deno.stdin.setRaw(false);
    } catch { /* terminal gone */ }
  };
}

/** Sends the terminal's size now and on every SIGWINCH; the returned function stops. */
export function watchWindowSize(resize: (width: number, height: number) => Promise<void>): () => void {
  const send = () => {
    let size: { columns: number; rows: number };
    try {
      size = Deno.consoleSize();
    } catch {
      return;
    }
    resize(size.columns, size.rows).catch(() => {});
  };
  send();
  Deno.addSignalListener("SIGWINCH", send);
  return () => Deno.removeSignalListener("SIGWINCH", send);
}

/**
 * ctr's ForwardAllSignals: signals this process gets go to the task instead. Deno cannot catch every
 * signal; these are the ones a user sends to a foreground command.
 */
export function forwardSignals(kill: (signal: number) => Promise<void>): () => void {
  const names: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGCONT"];
  const handlers = names.map((name) => {
    const h = () => void kill(SIGNALS[name]!).catch(() => {});
    Deno.addSignalListener(name, h);
    return [name, h] as const;
  });
  return () => {
    for (const [name, h] of handlers) Deno.removeSignalListener(name, h);
  };
}
