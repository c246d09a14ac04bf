/**
 * A pseudo-terminal for tests that run a command on a terminal of their own, with the master side in
 * this process: output read, input written and the window resized (TIOCSWINSZ) through ffi/fd.ts.
 */

import { fdSyscalls, O_NOCTTY, O_RDWR } from "../../ffi/fd.ts";

const libc = Deno.dlopen("libc.so.6", {
  posix_openpt: { parameters: ["i32"], result: "i32" },
  grantpt: { parameters: ["i32"], result: "i32" },
  unlockpt: { parameters: ["i32"], result: "i32" },
  ptsname_r: { parameters: ["i32", "buffer", "usize"], result: "i32" },
}).symbols;

export class Pty {
  readonly master: number;
  /** The terminal's path (/dev/pts/N), for the command's stdio. */
  readonly slavePath: string;
  #closed = false;

  constructor() {
    const fd = libc.posix_openpt(O_RDWR | O_NOCTTY);
    if (fd < 0) throw new Error("Cannot open a pty master: posix_openpt failed");
    const name = new Uint8Array(128);
    if (libc.grantpt(fd) !== 0 || libc.unlockpt(fd) !== 0 || libc.ptsname_r(fd, name, 128n) !== 0) {
      fdSyscalls().close(fd);
      throw new Error(`Cannot unlock the pty of master ${fd}`);
    }
    this.master = fd;
    this.slavePath = new TextDecoder().decode(name.subarray(0, name.indexOf(0)));
  }

  /**
   * A command line that runs `cmd` on this terminal as its controlling terminal, in a session of its
   * own (setsid -c), stdin, stdout and stderr all on the terminal.
   */
  command(cmd: readonly string[]): Deno.Command {
    return new Deno.Command("sh", {
      args: ["-c", 'exec setsid -w -c "$@" <"$0" >"$0" 2>&1', this.slavePath, ...cmd],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    });
  }

  /** The terminal's output until every holder of the terminal side closed it. */
  async *output(): AsyncGenerator<Uint8Array> {
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await fdSyscalls().read(this.master, buf);
      // -1 is EIO: the terminal side has no holder left.
      if (n <= 0) return;
      yield buf.slice(0, n);
    }
  }

  write(data: Uint8Array): Promise<boolean> {
    return fdSyscalls().writeAll(this.master, data);
  }

  resize(columns: number, rows: number): void {
    fdSyscalls().setWinsize(this.master, rows, columns);
  }

  /** Closes the master; call once output() ended (a read in flight holds it). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fdSyscalls().close(this.master);
  }
}
