/**
 * A process's output written by the shim itself as docker's json-file log, when its log URI asks for it
 * (`binary://<berth>?_BERTH_INTERNAL_LOGGING=json-file&path=…&max-size=…&max-file=…`): no logging
 * process per container, whose ~30 MB would dwarf the container, and the log keeps being written while
 * the daemon is down, since the shim holds the file.
 *
 * A regular file is always "ready" to poll(2), so the shim's fd poller cannot keep a slow disk off the
 * event loop: the writer queues lines and takes them to the file with one asynchronous write at a time,
 * and a write here never waits for the disk, so the container's pipes are always read. Lines a disk
 * too slow for them would pile up past the writer's bound are dropped, as docker's non-blocking mode does.
 */
import { type JsonFileConfig, JsonFileWriter, type LogStream } from "../core/logs/json_file.ts";

/** One stream's side of the log; the shape of output.ts's OutputSink. */
export interface JsonFileSink {
  write(chunk: Uint8Array): Promise<boolean>;
  close(): Promise<void>;
}

/** Opens the log file; its sinks share it, and the last to close closes it after writing what is left. */
export async function openJsonFileSinks(
  config: JsonFileConfig,
  options: { readonly stderr: boolean },
): Promise<{ stdout: JsonFileSink; stderr: JsonFileSink | undefined }> {
  const writer = await JsonFileWriter.open(config);
  let open = options.stderr ? 2 : 1;
  const sink = (stream: LogStream): JsonFileSink => {
    let closing: Promise<void> | undefined;
    return {
      write(chunk) {
        writer.write(stream, chunk);
        return Promise.resolve(true);
      },
      close() {
        return closing ??= (() => {
          writer.endStream(stream);
          return --open === 0 ? writer.close() : writer.flushed();
        })();
      },
    };
  };
  return { stdout: sink("stdout"), stderr: options.stderr ? sink("stderr") : undefined };
}
