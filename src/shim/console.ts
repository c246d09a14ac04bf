/**
 * runc's console socket: for a terminal process, runc connects to a unix socket we name in
 * --console-socket and sends the pty master over it (SCM_RIGHTS). The socket lives in a private
 * temporary folder and is gone once the master has arrived.
 */

import { type ReceivedFd, type SocketSyscalls, socketSyscalls } from "../../ffi/socket.ts";
import { unavailable } from "../base/errors.ts";

export class ConsoleSocket {
  readonly path: string;
  readonly #dir: string;
  readonly #listener: number;
  readonly #sys: SocketSyscalls;
  readonly #received: Promise<ReceivedFd>;
  #closed = false;

  private constructor(dir: string, listener: number, sys: SocketSyscalls) {
    this.#dir = dir;
    this.path = `${dir}/pty.sock`;
    this.#listener = listener;
    this.#sys = sys;
    this.#received = (async () => {
      const conn = await sys.accept(listener);
      try {
        return await sys.receiveFd(conn);
      } finally {
        sys.close(conn);
      }
    })();
    this.#received.catch(() => {}); // observed by receive(); a closed socket must not be unhandled
  }

  /** Listens on a fresh socket under `parent` (short paths: sun_path holds 107 bytes). */
  static async create(parent = "/tmp", sys: SocketSyscalls = socketSyscalls()): Promise<ConsoleSocket> {
    const dir = await Deno.makeTempDir({ dir: parent, prefix: "berth-pty-" });
    try {
      return new ConsoleSocket(dir, sys.listenUnix(`${dir}/pty.sock`), sys);
    } catch (err) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  /** The pty master runc sent; fails when the socket is closed first or nothing arrives in time. */
  async receive(timeoutMs = 10_000): Promise<ReceivedFd> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.close();
        reject(unavailable(`No console arrived on ${this.path} within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.#received, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops listening (a pending accept fails) and removes the socket folder. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sys.shutdown(this.#listener);
    // The accept thread may still hold the descriptor: close it once that call has ended.
    this.#received.finally(() => this.#sys.close(this.#listener)).catch(() => {});
    Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}
