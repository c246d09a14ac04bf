/**
 * Where a process's output goes, read from the stdout and stderr of a Create or Exec request as
 * containerd's runc shim reads them (pkg/process/io.go createIO): the scheme of stdout decides for both.
 *
 * - No scheme: each stream to its own path, a FIFO the client made (and reads) or a file appended to.
 *   When both streams name one path that does not exist (`ctr run --log-uri /path`), it is created as a
 *   file, as for file://.
 * - `file:///path`: both streams appended to one file, made with its parent folders when missing.
 * - `binary:///path?key=value`: a logging binary the shim starts reads both (binary_logger.ts).
 * - `binary:///berth?_BERTH_INTERNAL_LOGGING=json-file&path=/file&max-size=10m&max-file=3`: docker's
 *   json-file log, which the shim writes itself, no binary started (json_file_output.ts).
 *
 * Every destination is a non-blocking descriptor written through the shim's one poller, so that output
 * reaches it as soon as the process writes it and a reader that stalls holds no thread (see
 * fifo_poller.ts). Deno's own pipeTo() from a child's pipe into a file held everything back until the
 * process closed its end: a container's first line came when it exited.
 */

import { SyscallError } from "../../ffi/libc.ts";
import {
  ENXIO,
  type FdSyscalls,
  fdSyscalls,
  O_APPEND,
  O_CREAT,
  O_NONBLOCK,
  O_RDONLY,
  O_WRONLY,
} from "../../ffi/fd.ts";
import { invalidArgument, unavailable } from "../base/errors.ts";
import { BinaryLogger, type LoggerContext, type LoggerTarget } from "./binary_logger.ts";
import { type FdPoller, fdPoller, type PolledFd } from "../base/fd_poller.ts";
import { type JsonFileConfig, jsonFileConfig } from "../core/logs/json_file.ts";
import { openJsonFileSinks } from "./json_file_output.ts";

/** The output side of a request's stdio. */
export interface OutputPaths {
  readonly stdout: string;
  readonly stderr: string;
  /** With a terminal there is one stream: stderr is not used. */
  readonly terminal: boolean;
}

export type OutputTarget =
  | { readonly kind: "paths"; readonly stdout: string; readonly stderr: string }
  | { readonly kind: "file"; readonly path: string }
  | { readonly kind: "binary" } & LoggerTarget
  | { readonly kind: "json-file" } & JsonFileConfig;

/** How long an output FIFO may wait for the client's reader before the call fails. */
const FIFO_OPEN_TIMEOUT_MS = 10_000;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

/** Reads a request's stdout and stderr; fails on an unknown scheme or a path that is not absolute. */
export function outputTarget(stdout: string, stderr: string): OutputTarget {
  const scheme = SCHEME.exec(stdout)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    for (const path of [stdout, stderr]) {
      if (path && !path.startsWith("/")) throw invalidArgument(`Output path ${path} is not absolute`);
    }
    return { kind: "paths", stdout, stderr };
  }
  if (scheme !== "file" && scheme !== "binary") {
    throw invalidArgument(`Output URI ${stdout} has an unknown scheme ${scheme}`);
  }
  let url: URL;
  try {
    url = new URL(stdout);
  } catch (err) {
    throw invalidArgument(`Output URI ${stdout} cannot be parsed`, { cause: err });
  }
  const path = decodeURIComponent(url.pathname);
  if (!path.startsWith("/") || path.endsWith("/")) {
    throw invalidArgument(`Output URI ${stdout} does not name an absolute file path`);
  }
  if (scheme === "file") return { kind: "file", path };
  // As Go's url.Query() gives them to containerd: each key once, with its first value (maybe empty).
  const args: string[] = [];
  const seen = new Set<string>();
  for (const [key, value] of url.searchParams) {
    if (seen.has(key)) continue;
    seen.add(key);
    args.push(key, value);
  }
  const jsonFile = jsonFileConfig(args);
  return jsonFile ? { kind: "json-file", ...jsonFile } : { kind: "binary", path, args };
}

/** One stream's destination. */
export interface OutputSink {
  /** Writes all of `chunk`, waiting while the destination is full; false once it failed for good. */
  write(chunk: Uint8Array): Promise<boolean>;
  /** Ends the stream: the reader sees its end once every writer closed. Idempotent. */
  close(): Promise<void>;
}

interface SinkOptions {
  readonly sys: FdSyscalls;
  readonly poller: FdPoller;
}

/** A non-blocking descriptor the poller writes; `held` are closed with it (a FIFO's read end). */
class PolledSink implements OutputSink {
  readonly #fd: number;
  readonly #held: readonly number[];
  readonly #polled: PolledFd;
  readonly #sys: FdSyscalls;
  #closing: Promise<void> | undefined;

  constructor(fd: number, held: readonly number[], options: SinkOptions) {
    this.#fd = fd;
    this.#held = held;
    this.#sys = options.sys;
    this.#polled = options.poller.attach(fd, { read: false });
  }

  write(chunk: Uint8Array): Promise<boolean> {
    return this.#polled.write(chunk);
  }

  close(): Promise<void> {
    return this.#closing ??= this.#polled.release().then(() => {
      for (const fd of [this.#fd, ...this.#held]) {
        try {
          this.#sys.close(fd);
        } catch { /* already closed */ }
      }
    });
  }
}

/** The output destinations of one process, and the logging binary that serves them, if any. */
export class ProcessOutputs {
  readonly stdout: OutputSink | undefined;
  readonly stderr: OutputSink | undefined;
  readonly #logger: BinaryLogger | undefined;

  constructor(stdout?: OutputSink, stderr?: OutputSink, logger?: BinaryLogger) {
    this.stdout = stdout;
    this.stderr = stderr;
    this.#logger = logger;
  }

  /** Closes what the copies have not closed yet, then stops the logging binary. */
  async close(): Promise<void> {
    await Promise.all([this.stdout?.close(), this.stderr?.close()]);
    await this.#logger?.stop();
  }
}

export interface OpenOutputsOptions {
  /** The process: its container's id for an init, else its exec id (a logging binary's CONTAINER_ID). */
  readonly id: string;
  /** What a logging binary needs: the namespace, the shim's reaper and process syscalls. */
  readonly logger: LoggerContext;
  readonly sys?: FdSyscalls;
  readonly poller?: FdPoller;
  readonly fifoTimeoutMs?: number;
}

/** Opens a process's output destinations before the runtime runs it, so that a bad one fails the call. */
export async function openOutputs(paths: OutputPaths, options: OpenOutputsOptions): Promise<ProcessOutputs> {
  const target = outputTarget(paths.stdout, paths.stderr);
  const sinks: SinkOptions = { sys: options.sys ?? fdSyscalls(), poller: options.poller ?? fdPoller() };
  const withStderr = !paths.terminal;
  switch (target.kind) {
    case "paths": {
      const create = paths.stdout !== "" && paths.stdout === paths.stderr;
      const open = (path: string) => openPath(path, create, options, sinks);
      const stdout = paths.stdout ? await open(paths.stdout) : undefined;
      try {
        const stderr = paths.stderr && withStderr ? await open(paths.stderr) : undefined;
        return new ProcessOutputs(stdout, stderr);
      } catch (err) {
        await stdout?.close();
        throw err;
      }
    }
    case "file": {
      await Deno.mkdir(target.path.slice(0, target.path.lastIndexOf("/")) || "/", { recursive: true });
      const stdout = openFile(target.path, sinks);
      try {
        return new ProcessOutputs(stdout, withStderr ? openFile(target.path, sinks) : undefined);
      } catch (err) {
        await stdout.close();
        throw err;
      }
    }
    case "binary": {
      const { logger, stdout, stderr } = await BinaryLogger.start(target, {
        ...options.logger,
        id: options.id,
        fds: sinks.sys,
        poller: sinks.poller,
      });
      // A terminal has no stderr: the binary's fd 4 ends at once.
      if (!withStderr) sinks.sys.close(stderr);
      return new ProcessOutputs(
        new PolledSink(stdout, [], sinks),
        withStderr ? new PolledSink(stderr, [], sinks) : undefined,
        logger,
      );
    }
    case "json-file": {
      const { stdout, stderr } = await openJsonFileSinks(target, { stderr: withStderr });
      return new ProcessOutputs(stdout, stderr);
    }
  }
}

async function openPath(
  path: string,
  create: boolean,
  options: OpenOutputsOptions,
  sinks: SinkOptions,
): Promise<OutputSink> {
  let info: Deno.FileInfo | undefined;
  try {
    info = Deno.statSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    if (!create) throw invalidArgument(`Output ${path} of ${options.id} does not exist`, { cause: err });
  }
  if (!info) await Deno.mkdir(path.slice(0, path.lastIndexOf("/")) || "/", { recursive: true });
  if (!info?.isFifo) return openFile(path, sinks);
  return await openFifo(path, options.fifoTimeoutMs ?? FIFO_OPEN_TIMEOUT_MS, sinks);
}

function openFile(path: string, sinks: SinkOptions): OutputSink {
  return new PolledSink(sinks.sys.open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK, 0o644), [], sinks);
}

/**
 * Opens a FIFO for writing once the client's reader is there, as containerd's shim does: a shim that
 * held the read side first could write, close and so discard the output before a slow client opened it.
 * Then it holds a read end of its own, as containerd's shim does: once the client that created the FIFO
 * is gone (ctr run -d exits), writes still succeed, and a later `tasks attach` can read.
 */
async function openFifo(path: string, timeoutMs: number, sinks: SinkOptions): Promise<OutputSink> {
  const deadline = Date.now() + timeoutMs;
  let fd = -1;
  // A non-blocking open for writing fails with ENXIO while no reader is there; clients open theirs
  // before they ask for the task, so the first try nearly always works.
  for (let delay = 1; fd < 0; delay = Math.min(delay * 2, 50)) {
    try {
      fd = sinks.sys.open(path, O_WRONLY | O_NONBLOCK);
    } catch (err) {
      if (!(err instanceof SyscallError && err.errno === ENXIO)) throw err;
      if (Date.now() >= deadline) {
        throw unavailable(`No reader opened output FIFO ${path} within ${timeoutMs} ms`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  let held: number[] = [];
  try {
    held = [sinks.sys.open(path, O_RDONLY | O_NONBLOCK)];
  } catch { /* the FIFO is gone: writes fail once the client's reader leaves, and are dropped */ }
  return new PolledSink(fd, held, sinks);
}
