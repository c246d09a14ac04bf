/**
 * A process's stdio, connected to the FIFOs the client named (ctr makes them and holds the other ends).
 *
 * Without a terminal, runc's stdio are pipes that the container process inherits; their data is copied to
 * and from the FIFOs. Output FIFOs are opened read-write: that never blocks, keeps writes from failing
 * while no reader is there yet (a client that attaches later reads what was buffered), and closing our one
 * descriptor gives the reader its end of file. The stdin FIFO is opened read-only in the background (that
 * open waits for the client's writer) and its end of file closes the container's stdin.
 *
 * With a terminal, the pty master runc handed over is pumped both ways with FFI reads and writes on worker
 * threads, and resized with TIOCSWINSZ.
 */

import { type FdSyscalls, fdSyscalls, O_NONBLOCK, O_RDONLY } from "../../ffi/fd.ts";
import type { ProcessIO } from "./runc.ts";
import { fifoPoller } from "./fifo_poller.ts";

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

/** Pumps a pty master to and from the FIFOs. */
export class ConsoleStdio implements ProcessStdio {
  readonly #master: number;
  readonly #sys: FdSyscalls;
  readonly #stdin: ReadableStreamDefaultReader<Uint8Array> | undefined;
  readonly #output: Promise<void>;
  #closed = false;

  constructor(master: number, paths: StdioPaths, stdout: Deno.FsFile | undefined, sys = fdSyscalls()) {
    this.#master = master;
    this.#sys = sys;
    this.#output = this.#pumpOut(stdout);
    if (paths.stdin) {
      const stdin = this.#stdin = fifoPoller().open(paths.stdin).getReader();
      this.#pumpIn(stdin);
    }
  }

  async #pumpOut(stdout: Deno.FsFile | undefined): Promise<void> {
    const buf = new Uint8Array(32 * 1024);
    try {
      for (;;) {
        // EIO once every holder of the pty's other side has closed it: the process is gone.
        const n = await this.#sys.read(this.#master, buf);
        if (n <= 0) break;
        if (stdout) await writeAll(stdout, buf.subarray(0, n)).catch(() => {});
      }
    } finally {
      stdout?.close();
      releaseOutput(stdout, this.#sys);
    }
  }

  async #pumpIn(stdin: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await stdin.read();
        if (done || this.#closed || !(await this.#sys.writeAll(this.#master, value))) break;
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

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.closeStdin();
    // The output pump may still be reading on a worker thread: close the master once it returned.
    this.#output.finally(() => this.#sys.close(this.#master)).catch(() => {});
  }
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}
