import { fsSyscalls, S_IFIFO } from "../../../ffi/fs.ts";
import type { RuntimeLogger as Logger } from "./errors.ts";

/**
 * The shim's log: a FIFO named `log` in the bundle that the daemon makes and reads (the shim opens it
 * for writing and would block, or fail, without a reader). Lines go to the daemon's log at debug level.
 */
export class ShimLog {
  readonly #file: Deno.FsFile;
  readonly #path: string;
  #closed = false;
  readonly #done: Promise<void>;

  private constructor(file: Deno.FsFile, path: string, log: Logger, id: string) {
    this.#file = file;
    this.#path = path;
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
    // Read-write so the open does not wait for the shim and a read never sees end-of-file.
    const file = await Deno.open(path, { read: true, write: true });
    return new ShimLog(file, path, log, id);
  }

  async #pump(log: Logger, id: string): Promise<void> {
    const buf = new Uint8Array(16 * 1024);
    const dec = new TextDecoder();
    let pending = "";
    while (!this.#closed) {
      let n: number | null;
      try {
        n = await this.#file.read(buf);
      } catch {
        break;
      }
      if (n === null || this.#closed) break;
      pending += dec.decode(buf.subarray(0, n), { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) if (line.trim() !== "") log.debug(line.trim(), { shim: id });
    }
  }

  /**
   * Stops reading: a newline written through a second handle wakes the pending read (a write on the
   * reading handle would queue behind that read).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      using w = await Deno.open(this.#path, { write: true });
      await w.write(new TextEncoder().encode("\n"));
    } catch { /* already gone */ }
    await this.#done;
    try {
      this.#file.close();
    } catch { /* closed */ }
  }
}
