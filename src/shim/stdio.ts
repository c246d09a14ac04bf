/**
 * A process's stdio, connected to the FIFOs the client named (ctr makes them and holds the other ends).
 *
 * Without a terminal, runc's stdio are pipes that the container process inherits; their data is copied to
 * and from the FIFOs. Output FIFOs are opened read-write: that never blocks, keeps writes from failing
 * while no reader is there yet (a client that attaches later reads what was buffered), and closing our one
 * descriptor gives the reader its end of file. The stdin FIFO is opened read-only in the background (that
 * open waits for the client's writer) and its end of file closes the container's stdin.
 *
 * With a terminal, the pty master runc handed over is pumped both ways through the shared poller (see
 * fifo_poller.ts), and resized with TIOCSWINSZ.
 */

import { type FdSyscalls, fdSyscalls, O_APPEND, O_NONBLOCK, O_RDONLY, O_WRONLY } from "../../ffi/fd.ts";
import type { ProcessIO } from "./runc.ts";
import { type FifoPoller, fifoPoller, type PolledFd } from "./fifo_poller.ts";

export interface StdioPaths {
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly terminal: boolean;
}

export interface ProcessStdio {
  /** Closes the process's stdin (CloseIO). */
  closeStdin(): void;
  /** Resolves when all output has been copied (the process and its children closed their ends). */
  wait(timeoutMs: number): Promise<void>;
  resize(width: number, height: number): void;
  /** Stops copying and releases every descriptor; for a deleted process. */
  close(): void;
}

/** How long an output FIFO may wait for the client's reader before the call fails. */
const OUTPUT_OPEN_TIMEOUT_MS = 10_000;

/**
 * Output FIFOs of a process, opened before runc runs so that a bad path fails the call. A FIFO is opened
 * write-only, which waits until the client's reader is there, as containerd's shim does: a shim that
 * also held the read side could write, close and so discard the output before a slow client opened it.
 */
export async function openOutputs(
  paths: StdioPaths,
  sys: FdSyscalls = fdSyscalls(),
): Promise<{ stdout?: Deno.FsFile; stderr?: Deno.FsFile }> {
  const stdout = paths.stdout ? await openOutput(paths.stdout, sys) : undefined;
  try {
    const stderr = paths.stderr && !paths.terminal ? await openOutput(paths.stderr, sys) : undefined;
    return { stdout, stderr };
  } catch (err) {
    stdout?.close();
    throw err;
  }
}

/**
 * Read ends the shim holds on output FIFOs, as containerd's shim does: once the client that created them
 * is gone (ctr run -d exits), writes still succeed, and a later `tasks attach` can read.
 */
const keepAlive = new Map<Deno.FsFile, number>();

/** Releases the shim's own read end of an output FIFO, after its writer is closed. */
export function releaseOutput(file: Deno.FsFile | undefined, sys: FdSyscalls = fdSyscalls()): void {
  if (!file) return;
  const fd = keepAlive.get(file);
  keepAlive.delete(file);
  if (fd !== undefined) {
    try {
      sys.close(fd);
    } catch { /* already closed */ }
  }
}

async function openOutput(path: string, sys: FdSyscalls): Promise<Deno.FsFile> {
  const info = await Deno.stat(path);
  if (!info.isFifo) return await Deno.open(path, { write: true, append: true });
  const file = await openFifoWriter(path, sys);
  try {
    keepAlive.set(file, sys.open(path, O_RDONLY | O_NONBLOCK));
  } catch { /* the FIFO is gone: writes will fail and be dropped */ }
  return file;
}

async function openFifoWriter(path: string, sys: FdSyscalls): Promise<Deno.FsFile> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const opening = Deno.open(path, { write: true });
  try {
    return await Promise.race([
      opening,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          timedOut = true;
          // Be the reader for a moment: the pending open returns, and is closed below.
          try {
            sys.close(sys.open(path, O_RDONLY | O_NONBLOCK));
          } catch { /* the FIFO is gone */ }
          reject(new Error(`No reader opened ${path} within ${OUTPUT_OPEN_TIMEOUT_MS} ms`));
        }, OUTPUT_OPEN_TIMEOUT_MS);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (timedOut) opening.then((f) => f.close(), () => {});
  }
}

async function copyOut(stream: ReadableStream<Uint8Array>, file: Deno.FsFile | undefined): Promise<void> {
  if (!file) {
    for await (const _ of stream) { /* no FIFO named: drop it, but drain so the process never blocks */ }
    return;
  }
  try {
    await stream.pipeTo(file.writable);
  } catch {
    // The client went away for good; drain the rest so the process does not block on a full pipe.
    try {
      file.close();
    } catch { /* already closed by pipeTo */ }
    await stream.cancel().catch(() => {});
  } finally {
    releaseOutput(file);
  }
}

/** Copies between runc's pipes and the FIFOs. */
export class PipeStdio implements ProcessStdio {
  readonly #copies: Promise<void>;
  readonly #stdin: ReadableStream<Uint8Array> | undefined;
  readonly #stdinWriter: WritableStream<Uint8Array> | null;
  readonly #stdinAbort = new AbortController();
  readonly #sys: FdSyscalls;

  constructor(
    io: ProcessIO,
    paths: StdioPaths,
    outputs: { stdout?: Deno.FsFile; stderr?: Deno.FsFile },
    sys: FdSyscalls = fdSyscalls(),
  ) {
    this.#sys = sys;
    const copies: Promise<void>[] = [];
    if (io.stdout) copies.push(copyOut(io.stdout, outputs.stdout));
    else {
      outputs.stdout?.close();
      releaseOutput(outputs.stdout, sys);
    }
    if (io.stderr) copies.push(copyOut(io.stderr, outputs.stderr));
    else {
      outputs.stderr?.close();
      releaseOutput(outputs.stderr, sys);
    }
    this.#copies = Promise.all(copies).then(() => {});
    this.#stdinWriter = io.stdin;
    if (io.stdin && paths.stdin) {
      const stdin = this.#stdin = fifoPoller().open(paths.stdin);
      const writer = io.stdin;
      stdin.pipeTo(writer, { signal: this.#stdinAbort.signal }).catch(() => {}).finally(() =>
        writer.abort().catch(() => {})
      );
    } else {
      io.stdin?.close().catch(() => {});
    }
  }

  closeStdin(): void {
    this.#stdinAbort.abort();
    this.#stdin?.cancel().catch(() => {});
    this.#stdinWriter?.abort().catch(() => {});
  }

  async wait(timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#copies, new Promise((r) => timer = setTimeout(r, timeoutMs))]);
    clearTimeout(timer);
  }

  resize(): void {}

  close(): void {
    this.closeStdin();
  }
}

/**
 * Pumps a pty master to and from the FIFOs through the shared poller: the master, the stdin FIFO and a
 * non-blocking descriptor on the stdout FIFO are all waited for by its one poll, so terminals cost no
 * thread each.
 */
export class ConsoleStdio implements ProcessStdio {
  readonly #master: number;
  readonly #sys: FdSyscalls;
  readonly #polled: PolledFd;
  readonly #stdin: ReadableStreamDefaultReader<Uint8Array> | undefined;
  readonly #input: Promise<void>;
  readonly #output: Promise<void>;
  /** The stdout FIFO, opened again non-blocking. */
  #stdout: PolledFd | undefined;
  #stdoutFd = -1;
  #closed = false;

  constructor(
    master: number,
    paths: StdioPaths,
    stdout: Deno.FsFile | undefined,
    options: { sys?: FdSyscalls; poller?: FifoPoller } = {},
  ) {
    const sys = this.#sys = options.sys ?? fdSyscalls();
    const poller = options.poller ?? fifoPoller();
    this.#master = master;
    this.#polled = poller.attach(master);
    this.#output = this.#pumpOut(this.#polled.readable, paths.stdout, stdout, poller);
    if (paths.stdin) {
      const stdin = this.#stdin = poller.open(paths.stdin).getReader();
      // A terminal's input has no end of file: the client that started it (ctr run -d -t) may leave and
      // another attach later. Our own writer keeps the FIFO from ending when the last client closes it.
      let keepOpen = -1;
      try {
        keepOpen = sys.open(paths.stdin, O_WRONLY | O_NONBLOCK);
      } catch { /* not a FIFO with our reader on it: input ends with its writers */ }
      this.#input = this.#pumpIn(stdin).finally(() => {
        if (keepOpen >= 0) sys.close(keepOpen);
      });
    } else {
      this.#input = Promise.resolve();
    }
    // Both pumps are done with the master once the poller let it go: only then may it be closed.
    Promise.all([this.#output, this.#input]).then(() => this.#polled.release()).then(() =>
      sys.close(this.#master)
    )
      .catch(() => {});
  }

  async #pumpOut(
    output: ReadableStream<Uint8Array>,
    path: string,
    file: Deno.FsFile | undefined,
    poller: FifoPoller,
  ): Promise<void> {
    const write = file ? this.#outputWriter(path, file, poller) : undefined;
    let writable = true;
    try {
      // Ends at EIO: every holder of the pty's other side has closed it, so the process is gone.
      for await (const chunk of output) {
        // A client gone for good drops the rest, which is still read so the process never blocks.
        if (writable && write) writable = await write(chunk);
      }
    } finally {
      await this.#stdout?.release();
      if (this.#stdout) this.#sys.close(this.#stdoutFd);
      try {
        file?.close();
      } catch { /* closed once the non-blocking descriptor took over */ }
      releaseOutput(file, this.#sys);
    }
  }

  /**
   * Writes to the stdout FIFO through the poller: a blocking write holds a thread for as long as the
   * client does not read. Falls back to the file when the path cannot be opened again.
   */
  #outputWriter(
    path: string,
    file: Deno.FsFile,
    poller: FifoPoller,
  ): (chunk: Uint8Array) => Promise<boolean> {
    try {
      // The shim's own read end (openOutputs) is there, so this open cannot fail for want of a reader.
      this.#stdoutFd = this.#sys.open(path, O_WRONLY | O_NONBLOCK | O_APPEND);
    } catch {
      return (chunk) => writeAll(file, chunk).then(() => true, () => false);
    }
    this.#stdout = poller.attach(this.#stdoutFd, { read: false });
    file.close();
    const polled = this.#stdout;
    return (chunk) => polled.write(chunk);
  }

  async #pumpIn(stdin: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await stdin.read();
        if (done || this.#closed || !(await this.#polled.write(value))) break;
      }
    } catch { /* closed by CloseIO */ }
    await stdin.cancel().catch(() => {});
  }

  closeStdin(): void {
    this.#stdin?.cancel().catch(() => {});
  }

  async wait(timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#output, new Promise((r) => timer = setTimeout(r, timeoutMs))]);
    clearTimeout(timer);
  }

  resize(width: number, height: number): void {
    if (!this.#closed) this.#sys.setWinsize(this.#master, height, width);
  }

  /** Stops both pumps; the master is closed once the poller no longer uses it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.closeStdin();
    this.#stdout?.release();
    this.#polled.release();
  }
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}
