/**
 * `berth _BERTH_INTERNAL_LOGGING json-file path /file [max-size 10m] [max-file 3]`: Berth as the logging
 * binary of a json-file log URI, for a foreign shim (containerd's containerd-shim-runc-v2), which spawns
 * the URI's binary with its query as arguments, the process's stdout on fd 3, its stderr on fd 4 and a
 * ready pipe on fd 5 (see binary_logger.ts). Berth's own shim writes such a log itself and never runs
 * this. It only works for a compiled Berth: from source the executable is deno, which knows no such
 * arguments (a test points the URI at a script that runs main.ts instead).
 */
import { type FdSyscalls, fdSyscalls } from "../../ffi/fd.ts";
import { FdPoller } from "../base/fd_poller.ts";
import { jsonFileConfig, JsonFileWriter, type LogStream } from "../core/logs/json_file.ts";

/** The descriptors containerd's shim hands a logging binary. */
export interface LoggerFds {
  readonly stdout: number;
  readonly stderr: number;
  readonly ready: number;
}

const CONTAINERD_FDS: LoggerFds = { stdout: 3, stderr: 4, ready: 5 };

export interface JsonFileLoggerOptions {
  readonly fds?: LoggerFds;
  readonly sys?: FdSyscalls;
  /**
   * SIGTERM: containerd's shim sends it once it closed its ends of the pipes, and kills the logger 12 s
   * later. What is still in the pipes is read to its end (the writers are gone), for `drainMs` at most;
   * then the copies end, what was read is written, and the file closed.
   */
  readonly signal?: AbortSignal;
  /** How long the copies may go on after `signal` aborts; 5 s unless told. */
  readonly drainMs?: number;
}

/** Writes fds 3 and 4 to the log until both reach their end; returns the exit code. */
export async function jsonFileLoggerMain(
  args: readonly string[],
  options: JsonFileLoggerOptions = {},
): Promise<number> {
  const fds = options.fds ?? CONTAINERD_FDS;
  const sys = options.sys ?? fdSyscalls();
  let writer: JsonFileWriter;
  try {
    const config = jsonFileConfig(args);
    if (!config) throw new Error(`Arguments ${JSON.stringify(args)} do not ask for a json-file log`);
    writer = await JsonFileWriter.open(config);
  } catch (err) {
    console.error(`berth json-file logger: ${(err as Error).message}`);
    return 2;
  }
  // Ready: the shim may start the process. The file is open, so no output is lost from here on.
  close(sys, fds.ready);
  const poller = new FdPoller(sys);
  const copy = async (fd: number, stream: LogStream) => {
    let polled;
    try {
      polled = poller.attach(fd);
    } catch {
      return; // not handed over (a terminal has no stderr)
    }
    const reader = polled.readable.getReader();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = () => {
      timer = setTimeout(() => reader.cancel().catch(() => {}), options.drainMs ?? 5_000);
    };
    options.signal?.addEventListener("abort", stop, { once: true });
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        writer.write(stream, value);
      }
    } catch {
      /* cancelled */
    } finally {
      options.signal?.removeEventListener("abort", stop);
      clearTimeout(timer);
      writer.endStream(stream);
      await polled.release();
      close(sys, fd);
    }
  };
  await Promise.all([copy(fds.stdout, "stdout"), copy(fds.stderr, "stderr")]);
  await writer.close();
  return 0;
}

/** The role as main.ts runs it: SIGTERM (containerd's shim stopping it) flushes and ends it. */
export async function jsonFileLoggerProcess(args: readonly string[]): Promise<number> {
  const abort = new AbortController();
  const onTerm = () => abort.abort();
  Deno.addSignalListener("SIGTERM", onTerm);
  try {
    return await jsonFileLoggerMain(args, { signal: abort.signal });
  } finally {
    Deno.removeSignalListener("SIGTERM", onTerm);
  }
}

function close(sys: FdSyscalls, fd: number): void {
  try {
    sys.close(fd);
  } catch { /* not open */ }
}
