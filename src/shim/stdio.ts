/**
 * A process's stdio: its output copied to the destinations output.ts opened (FIFOs the client reads, log
 * files, a logging binary's pipes), its input taken from the stdin FIFO the client named.
 *
 * Without a terminal, runc's stdio are pipes that the container process inherits. Their output is copied
 * chunk by chunk as it comes; the stdin FIFO is read through the shared poller, and its end of file closes
 * the container's stdin.
 *
 * With a terminal, the pty master runc handed over is pumped both ways through the shared poller (see
 * fifo_poller.ts), and resized with TIOCSWINSZ.
 */

import { type FdSyscalls, fdSyscalls, O_NONBLOCK, O_WRONLY } from "../../ffi/fd.ts";
import type { ProcessIO } from "./runc.ts";
import { type FdPoller, fdPoller, type PolledFd } from "../base/fd_poller.ts";
import type { OutputPaths, OutputSink, ProcessOutputs } from "./output.ts";

export interface StdioPaths extends OutputPaths {
  readonly stdin: string;
}

export interface ProcessStdio {
  /** Closes the process's stdin now, dropping what its FIFO still holds. */
  closeStdin(): void;
  /**
   * Ends the process's stdin for CloseIO: what the client wrote before closing its end still reaches the
   * process, then its stdin closes.
   */
  endStdin(): Promise<void>;
  /** Resolves when all output has been copied (the process and its children closed their ends). */
  wait(timeoutMs: number): Promise<void>;
  resize(width: number, height: number): void;
  /** Stops copying, releases every descriptor and stops a logging binary; for a deleted process. */
  close(): Promise<void>;
}

/**
 * Copies one output stream as it comes. Not pipeTo(): Deno's pipeTo from a child's pipe to a file held
 * every byte back until the pipe ended, so a container's output arrived when it exited.
 */
async function copyOut(stream: ReadableStream<Uint8Array>, sink: OutputSink | undefined): Promise<void> {
  let writable = sink !== undefined;
  try {
    for await (const chunk of stream) {
      // A destination gone for good drops the rest, which is still read so the process never blocks.
      if (writable) writable = await sink!.write(chunk);
    }
  } catch {
    /* the pipe failed: nothing more comes */
  } finally {
    await sink?.close();
  }
}

/** How long CloseIO lets a client that still holds its end of the stdin FIFO write, before the cut. */
const STDIN_DRAIN_MS = 1000;

/** Copies between runc's pipes and the process's destinations. */
export class PipeStdio implements ProcessStdio {
  readonly #copies: Promise<void>;
  readonly #outputs: ProcessOutputs;
  readonly #stdin: ReadableStream<Uint8Array> | undefined;
  readonly #stdinWriter: WritableStream<Uint8Array> | null;
  readonly #stdinAbort = new AbortController();
  /** Settles when the copy into the process's stdin has ended (the FIFO's end, or closeStdin()). */
  #stdinCopied: Promise<void> = Promise.resolve();

  constructor(io: ProcessIO, stdin: string, outputs: ProcessOutputs, poller: FdPoller = fdPoller()) {
    this.#outputs = outputs;
    const copies: Promise<void>[] = [];
    for (const [stream, sink] of [[io.stdout, outputs.stdout], [io.stderr, outputs.stderr]] as const) {
      if (stream) copies.push(copyOut(stream, sink));
      else sink?.close();
    }
    this.#copies = Promise.all(copies).then(() => {});
    this.#stdinWriter = io.stdin;
    if (io.stdin && stdin) {
      const input = this.#stdin = poller.open(stdin);
      const writer = io.stdin;
      this.#stdinCopied = input.pipeTo(writer, { signal: this.#stdinAbort.signal }).catch(() => {}).finally(
        () => writer.abort().catch(() => {}),
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

  /**
   * A client closes its end of the FIFO before it asks (ctr, CRI exec, Berth's CLI), so the copy reaches
   * the FIFO's end once what is buffered there went through: cancelling at once dropped that (an exec'd
   * `cat` fed "ping" saw nothing). One that still holds its end gets STDIN_DRAIN_MS, then the cut.
   */
  async endStdin(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#stdinCopied, new Promise((r) => timer = setTimeout(r, STDIN_DRAIN_MS))]);
    clearTimeout(timer);
    this.closeStdin();
  }

  async wait(timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#copies, new Promise((r) => timer = setTimeout(r, timeoutMs))]);
    clearTimeout(timer);
  }

  resize(): void {}

  async close(): Promise<void> {
    this.closeStdin();
    await this.#outputs.close();
  }
}

/**
 * Pumps a pty master to and from the process's destinations through the shared poller: the master, the
 * stdin FIFO and the output are all waited for by its one poll, so terminals cost no thread each.
 */
export class ConsoleStdio implements ProcessStdio {
  readonly #master: number;
  readonly #sys: FdSyscalls;
  readonly #polled: PolledFd;
  readonly #outputs: ProcessOutputs;
  readonly #stdin: ReadableStreamDefaultReader<Uint8Array> | undefined;
  readonly #input: Promise<void>;
  readonly #output: Promise<void>;
  #closed = false;

  constructor(
    master: number,
    stdin: string,
    outputs: ProcessOutputs,
    options: { sys?: FdSyscalls; poller?: FdPoller } = {},
  ) {
    const sys = this.#sys = options.sys ?? fdSyscalls();
    const poller = options.poller ?? fdPoller();
    this.#master = master;
    this.#outputs = outputs;
    this.#polled = poller.attach(master);
    this.#output = this.#pumpOut(this.#polled.readable, outputs.stdout);
    if (stdin) {
      const input = this.#stdin = poller.open(stdin).getReader();
      // A terminal's input has no end of file: the client that started it (ctr run -d -t) may leave and
      // another attach later. Our own writer keeps the FIFO from ending when the last client closes it.
      let keepOpen = -1;
      try {
        keepOpen = sys.open(stdin, O_WRONLY | O_NONBLOCK);
      } catch { /* not a FIFO with our reader on it: input ends with its writers */ }
      this.#input = this.#pumpIn(input).finally(() => {
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

  async #pumpOut(output: ReadableStream<Uint8Array>, sink: OutputSink | undefined): Promise<void> {
    let writable = sink !== undefined;
    try {
      // Ends at EIO: every holder of the pty's other side has closed it, so the process is gone.
      for await (const chunk of output) {
        // A destination gone for good drops the rest, which is still read so the process never blocks.
        if (writable) writable = await sink!.write(chunk);
      }
    } finally {
      await sink?.close();
    }
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

  /** A terminal's input has no end to wait for (our own writer keeps the FIFO open): closed now. */
  endStdin(): Promise<void> {
    this.closeStdin();
    return Promise.resolve();
  }

  async wait(timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#output, new Promise((r) => timer = setTimeout(r, timeoutMs))]);
    clearTimeout(timer);
  }

  resize(width: number, height: number): void {
    if (!this.#closed) this.#sys.setWinsize(this.#master, height, width);
  }

  /** Stops both pumps (the master is closed once the poller no longer uses it) and the destinations. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.closeStdin();
    this.#polled.release();
    await this.#outputs.close();
  }
}
