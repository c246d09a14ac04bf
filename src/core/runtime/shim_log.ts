import { fsSyscalls, S_IFIFO } from "../../../ffi/fs.ts";
import { fdPoller } from "../../base/fd_poller.ts";
import type { BasicLogger as Logger } from "../../base/log.ts";

/**
 * The shim's log: a FIFO named `log` in the bundle that the daemon makes and reads (the shim opens it
 * for writing and would block, or fail, without a reader). Lines go to the daemon's log at debug level.
 * It is read through the shared FIFO poller: a blocking read per task held one of the runtime's
 * blocking-pool threads each, and the daemon hung after about 30 live tasks.
 */
export class ShimLog {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #done: Promise<void>;
  #closed = false;

  private constructor(stream: ReadableStream<Uint8Array>, log: Logger, id: string) {
    this.#reader = stream.getReader();
    this.#done = this.#pump(log, id);
  }

  static async open(bundlePath: string, log: Logger, id: string): Promise<ShimLog> {
    const path = `${bundlePath}/log`;
    try {
      fsSyscalls().mknod(path, S_IFIFO | 0o700, 0, 0);
    } catch (err) {
      // An existing FIFO (a restart re-attaching to a live shim) is reused.
      if (!(await Deno.lstat(path).then((s) => s.isFifo, () => false))) throw err;
    }
    return new ShimLog(fdPoller().open(path), log, id);
  }

  async #pump(log: Logger, id: string): Promise<void> {
    const dec = new TextDecoder();
    let pending = "";
    try {
      for (;;) {
        const { value: chunk, done } = await this.#reader.read();
        if (done) break;
        pending += dec.decode(chunk, { stream: true });
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const line of lines) if (line.trim() !== "") log.debug(line.trim(), { shim: id });
      }
    } catch { /* cancelled by close() */ }
  }

  /** Stops reading and closes the FIFO. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#reader.cancel().catch(() => {});
    await this.#done;
  }
}
