/**
 * Raw file-descriptor calls for what Deno's file API cannot hold: a pty master received over a socket, an
 * eventfd registered with a cgroup, a FIFO opened without blocking. Calls that may block (read, write,
 * poll) are `nonblocking` FFI symbols: each runs on a worker thread and answers with a promise, so the
 * event loop keeps running. errno is thread-local, so those calls report failure as -1 without a code.
 */

import { lazySymbols } from "./lazy_symbols.ts";
import { check, cstr, errno, SyscallError } from "./libc.ts";

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const O_NOCTTY = 0o400;
export const O_APPEND = 0o2000;
export const O_CREAT = 0o100;
export const ENXIO = 6;
export const EFD_CLOEXEC = 0o2000000;
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const EAGAIN = 11;
export const EIO = 5;
const TIOCSWINSZ = 0x5414n;
const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
const F_GETFL = 3;
const F_SETFL = 4;

const SYMBOLS = {
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  read_thread: { name: "read", parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
  write_thread: { name: "write", parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
  poll_thread: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
const lib: Symbols = lazySymbols(SYMBOLS);
function sym(): Symbols {
  return lib;
}

export interface PollFd {
  readonly fd: number;
  readonly events: number;
}

export interface FdSyscalls {
  /** open(2) with O_CLOEXEC added. */
  open(path: string, flags: number, mode?: number): number;
  close(fd: number): void;
  /** write(2) on the calling thread; for descriptors that never block (eventfd, O_NONBLOCK). */
  writeSync(fd: number, data: Uint8Array): number;
  /** read(2) on the calling thread, for O_NONBLOCK descriptors: the byte count, 0 at end of file, -1 when
   * nothing is there yet (EAGAIN) or on error. */
  readNow(fd: number, buf: Uint8Array<ArrayBuffer>): number;
  /** read(2) on the calling thread, for O_NONBLOCK descriptors: the byte count, 0 at end of file, or -errno
   * (-EAGAIN: nothing there yet; -EIO: a pty master whose other side every holder closed). */
  readAvailable(fd: number, buf: Uint8Array<ArrayBuffer>): number;
  /** write(2) on the calling thread, for O_NONBLOCK descriptors: the byte count, or -errno (-EAGAIN: full). */
  writeAvailable(fd: number, data: Uint8Array): number;
  /** Sets O_NONBLOCK on an open descriptor (one received from another process, say). */
  setNonBlocking(fd: number): void;
  /** read(2) on a worker thread: the byte count, 0 at end of file, -1 on any error (EIO of a closed pty). */
  read(fd: number, buf: Uint8Array<ArrayBuffer>): Promise<number>;
  /** Writes all of `data` on a worker thread; false when the descriptor failed. */
  writeAll(fd: number, data: Uint8Array): Promise<boolean>;
  /** poll(2) on a worker thread: the returned events of each descriptor, or null on error. */
  poll(fds: readonly PollFd[], timeoutMs: number): Promise<number[] | null>;
  /** TIOCSWINSZ: sets a terminal's window size. */
  setWinsize(fd: number, rows: number, cols: number): void;
  eventfd(initial: number): number;
  /** pipe2(2) with O_CLOEXEC: the read end, then the write end. */
  pipe(): [read: number, write: number];
  /**
   * Sets FD_CLOEXEC on every descriptor above 2 that lacks it. Deno's node-compat sockets are opened
   * without it, and a child (a shim) that inherits the daemon's API socket keeps the address answering
   * after the daemon is gone. Returns the descriptors it changed.
   */
  closeOnExecAll(): number[];
}

class LibcFdSyscalls implements FdSyscalls {
  open(path: string, flags: number, mode = 0o600): number {
    const fd = sym().open(cstr(path), flags | O_CLOEXEC, mode);
    check(fd, "open", () => `Cannot open ${path}`);
    return fd;
  }

  close(fd: number): void {
    check(sym().close(fd), "close", () => `Cannot close descriptor ${fd}`);
  }

  writeSync(fd: number, data: Uint8Array): number {
    const buf = new Uint8Array(data);
    const n = Number(sym().write(fd, buf, BigInt(buf.length)));
    check(n, "write", () => `Cannot write to descriptor ${fd}`);
    return n;
  }

  readNow(fd: number, buf: Uint8Array<ArrayBuffer>): number {
    return Number(sym().read(fd, buf, BigInt(buf.length)));
  }

  readAvailable(fd: number, buf: Uint8Array<ArrayBuffer>): number {
    const n = Number(sym().read(fd, buf, BigInt(buf.length)));
    return n < 0 ? -errno() : n;
  }

  writeAvailable(fd: number, data: Uint8Array): number {
    const buf = data.buffer instanceof ArrayBuffer ? data as Uint8Array<ArrayBuffer> : new Uint8Array(data);
    const n = Number(sym().write(fd, buf, BigInt(buf.length)));
    return n < 0 ? -errno() : n;
  }

  setNonBlocking(fd: number): void {
    const flags = sym().fcntl(fd, F_GETFL, 0);
    check(flags, "fcntl", () => `Cannot read the flags of descriptor ${fd}`);
    check(
      sym().fcntl(fd, F_SETFL, flags | O_NONBLOCK),
      "fcntl",
      () => `Cannot make descriptor ${fd} non-blocking`,
    );
  }

  async read(fd: number, buf: Uint8Array<ArrayBuffer>): Promise<number> {
    return Number(await sym().read_thread(fd, buf, BigInt(buf.length)));
  }

  async writeAll(fd: number, data: Uint8Array): Promise<boolean> {
    // A private copy: the worker thread reads it while JS may reuse the caller's buffer.
    const buf = new Uint8Array(data);
    let off = 0;
    while (off < buf.length) {
      const n = Number(await sym().write_thread(fd, buf.subarray(off), BigInt(buf.length - off)));
      if (n <= 0) return false;
      off += n;
    }
    return true;
  }

  async poll(fds: readonly PollFd[], timeoutMs: number): Promise<number[] | null> {
    // struct pollfd { int fd; short events; short revents; }
    const raw = new Uint8Array(fds.length * 8);
    const view = new DataView(raw.buffer);
    fds.forEach((p, i) => {
      view.setInt32(i * 8, p.fd, true);
      view.setInt16(i * 8 + 4, p.events, true);
    });
    const rc = await sym().poll_thread(raw, BigInt(fds.length), timeoutMs);
    if (rc < 0) return null;
    return fds.map((_, i) => view.getInt16(i * 8 + 6, true));
  }

  setWinsize(fd: number, rows: number, cols: number): void {
    // struct winsize { unsigned short ws_row, ws_col, ws_xpixel, ws_ypixel; }
    const ws = new Uint16Array([rows, cols, 0, 0]);
    const rc = sym().ioctl(fd, TIOCSWINSZ, new Uint8Array(ws.buffer));
    check(rc, "ioctl", () => `Cannot resize terminal ${fd} to ${cols}x${rows}`);
  }

  eventfd(initial: number): number {
    const fd = sym().eventfd(initial, EFD_CLOEXEC);
    if (fd < 0) throw new SyscallError("eventfd", "Cannot create an eventfd", errno());
    return fd;
  }

  pipe(): [read: number, write: number] {
    const fds = new Int32Array(2);
    check(sym().pipe2(new Uint8Array(fds.buffer), O_CLOEXEC), "pipe2", () => "Cannot create a pipe");
    return [fds[0]!, fds[1]!];
  }

  closeOnExecAll(): number[] {
    const changed: number[] = [];
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync("/proc/self/fd")];
    } catch {
      return changed;
    }
    for (const e of entries) {
      const fd = Number(e.name);
      if (!(fd > 2)) continue;
      const flags = sym().fcntl(fd, F_GETFD, 0);
      // A descriptor closed since the listing (the listing's own, for one) answers -1: skip it.
      if (flags < 0 || (flags & FD_CLOEXEC) !== 0) continue;
      if (sym().fcntl(fd, F_SETFD, flags | FD_CLOEXEC) === 0) changed.push(fd);
    }
    return changed;
  }
}

let real: FdSyscalls | undefined;

/** The process-wide implementation backed by libc. */
export function fdSyscalls(): FdSyscalls {
  real ??= new LibcFdSyscalls();
  return real;
}
