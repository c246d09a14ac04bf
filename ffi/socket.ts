/**
 * Unix stream sockets that can receive a file descriptor (SCM_RIGHTS), which Deno.listen cannot: runc's
 * --console-socket hands the pty master of a terminal container over such a socket. accept and recvmsg
 * run on worker threads (nonblocking FFI symbols); a pending accept is ended by shutdown(2).
 *
 * And unix datagram sockets, which Deno cannot send to: systemd's NOTIFY_SOCKET (sd_notify) is one, and
 * its name may be abstract (`@name`, a leading NUL byte in the address).
 *
 * And TCP sockets made inside another network namespace (a pod's, for CRI port-forward): the calling
 * thread enters the namespace with setns(2), creates the socket, and returns at once; a socket stays in
 * the namespace it was made in, so it is connected afterwards from the daemon's own namespace.
 */

import { lazySymbols } from "./lazy_symbols.ts";
import { cstr, errno, SyscallError } from "./libc.ts";

const AF_UNIX = 1;
const AF_INET = 2;
const SHUT_WR = 1;
const SOCK_NONBLOCK = 0o4000;
const CLONE_NEWNET = 0x40000000;
const SO_ERROR = 4;
const POLLOUT = 0x4;
const EINPROGRESS = 115;
const ETIMEDOUT = 110;
const O_RDONLY_CLOEXEC = 0o2000000;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const POLLIN = 0x1;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const SHUT_RDWR = 2;
const MSG_CMSG_CLOEXEC = 0x40000000;
const SUN_PATH_MAX = 108;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32", nonblocking: true },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize", nonblocking: true },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
} as const satisfies Deno.ForeignLibraryInterface;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let lib: Symbols | undefined;
function sym(): Symbols {
  return lib ??= lazySymbols(SYMBOLS);
}

export interface ReceivedFd {
  readonly fd: number;
  /** The bytes sent along with the descriptor (runc sends the pty's path). */
  readonly message: string;
}

export interface SocketSyscalls {
  /** A listening unix stream socket bound at `path` (which must not exist). */
  listenUnix(path: string): number;
  /** Accepts one connection on a worker thread; rejects once the listener is shut down. */
  accept(listener: number): Promise<number>;
  /** Receives one message carrying a descriptor (SCM_RIGHTS). */
  receiveFd(conn: number): Promise<ReceivedFd>;
  /** Wakes a pending accept (it fails) without closing the descriptor. */
  shutdown(fd: number): void;
  /** Half-closes a stream socket: the peer reads end of file. */
  shutdownWrite(fd: number): void;
  close(fd: number): void;
  /**
   * A non-blocking TCP/IPv4 socket in the network namespace at `netnsPath` (a bind-mounted nsfs file or
   * /proc/<pid>/ns/net).
   */
  tcpSocketIn(netnsPath: string): number;
  /** Connects `fd` to 127.0.0.1:`port`; rejects with a SyscallError carrying the errno (ECONNREFUSED…). */
  connectLoopback(fd: number, port: number, timeoutMs?: number): Promise<void>;
  /**
   * Sends one datagram to the unix datagram socket `address`: a path, or `@name` for an abstract one.
   * Throws a SyscallError when nobody is bound there.
   */
  sendDatagram(address: string, data: Uint8Array): void;
  /** A unix datagram socket bound at `address` (a path, or `@name` for an abstract one). */
  bindDatagram(address: string): number;
  /** The next datagram on `fd`, or null when none came within `timeoutMs`. */
  receiveDatagram(fd: number, timeoutMs: number): Promise<Uint8Array | null>;
}

/** struct sockaddr_un for a path or an abstract `@name`, and the length to pass with it. */
function unixAddress(address: string): { addr: Uint8Array<ArrayBuffer>; len: number } {
  const abstract = address.startsWith("@");
  // An abstract name is the bytes after a leading NUL, counted by the length, not NUL-terminated.
  const name = abstract ? encoder.encode(address.slice(1)) : cstr(address);
  const used = abstract ? name.length + 1 : name.length;
  if (used > SUN_PATH_MAX) {
    throw new SyscallError("bind", `Cannot use socket ${address}: longer than ${SUN_PATH_MAX - 1} bytes`, 36);
  }
  const addr = new Uint8Array(2 + SUN_PATH_MAX);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(name, abstract ? 3 : 2);
  return { addr, len: 2 + used };
}

const encoder = new TextEncoder();

class LibcSocketSyscalls implements SocketSyscalls {
  listenUnix(path: string): number {
    const p = cstr(path);
    if (p.length > SUN_PATH_MAX) {
      throw new SyscallError("bind", `Cannot bind ${path}: path longer than ${SUN_PATH_MAX - 1} bytes`, 36);
    }
    const s = sym();
    const fd = s.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new SyscallError("socket", "Cannot create a unix socket", errno());
    // struct sockaddr_un { sa_family_t sun_family; char sun_path[108]; }
    const addr = new Uint8Array(2 + SUN_PATH_MAX);
    new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
    addr.set(p, 2);
    if (s.bind(fd, addr, 2 + p.length) !== 0 || s.listen(fd, 4) !== 0) {
      const code = errno();
      s.close(fd);
      throw new SyscallError("bind", `Cannot listen on ${path}`, code);
    }
    return fd;
  }

  async accept(listener: number): Promise<number> {
    const fd = await sym().accept4(listener, null, null, SOCK_CLOEXEC);
    if (fd < 0) throw new SyscallError("accept4", `Cannot accept on socket ${listener}`, 0);
    return fd;
  }

  async receiveFd(conn: number): Promise<ReceivedFd> {
    // x86_64/aarch64 LP64 layouts: iovec {base, len} 16 bytes; msghdr 56 bytes; cmsghdr 16 + data.
    const data = new Uint8Array(4096);
    const iov = new BigUint64Array(2);
    iov[0] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(data)));
    iov[1] = BigInt(data.length);
    const control = new Uint8Array(24); // CMSG_SPACE(sizeof(int))
    const msg = new BigUint64Array(7);
    msg[2] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(iov)));
    msg[3] = 1n;
    msg[4] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(control)));
    msg[5] = BigInt(control.length);
    const n = Number(await sym().recvmsg(conn, new Uint8Array(msg.buffer), MSG_CMSG_CLOEXEC));
    if (n < 0) throw new SyscallError("recvmsg", `Cannot receive a descriptor on socket ${conn}`, 0);
    const cview = new DataView(control.buffer);
    const clen = Number(cview.getBigUint64(0, true));
    const level = cview.getInt32(8, true);
    const type = cview.getInt32(12, true);
    if (clen < 20 || level !== SOL_SOCKET || type !== SCM_RIGHTS) {
      throw new SyscallError("recvmsg", `No descriptor arrived on socket ${conn}`, 22);
    }
    return { fd: cview.getInt32(16, true), message: new TextDecoder().decode(data.subarray(0, n)) };
  }

  shutdown(fd: number): void {
    sym().shutdown(fd, SHUT_RDWR);
  }

  shutdownWrite(fd: number): void {
    sym().shutdown(fd, SHUT_WR);
  }

  close(fd: number): void {
    if (sym().close(fd) !== 0) throw new SyscallError("close", `Cannot close socket ${fd}`, errno());
  }

  tcpSocketIn(netnsPath: string): number {
    const s = sym();
    const target = s.open(cstr(netnsPath), O_RDONLY_CLOEXEC);
    if (target < 0) throw new SyscallError("open", `Cannot open network namespace ${netnsPath}`, errno());
    const home = s.open(cstr("/proc/thread-self/ns/net"), O_RDONLY_CLOEXEC);
    if (home < 0) {
      const code = errno();
      s.close(target);
      throw new SyscallError("open", "Cannot open this thread's network namespace", code);
    }
    try {
      if (s.setns(target, CLONE_NEWNET) !== 0) {
        throw new SyscallError("setns", `Cannot enter network namespace ${netnsPath}`, errno());
      }
      // Nothing else runs on this thread until it is back home: these calls are synchronous.
      const fd = s.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      const socketErr = errno();
      if (s.setns(home, CLONE_NEWNET) !== 0) {
        // The daemon's thread would stay in a pod's network: nothing after this could be trusted.
        console.error(`FATAL: cannot return to the daemon's network namespace (errno ${errno()})`);
        Deno.exit(70);
      }
      if (fd < 0) throw new SyscallError("socket", `Cannot create a socket in ${netnsPath}`, socketErr);
      return fd;
    } finally {
      s.close(home);
      s.close(target);
    }
  }

  async connectLoopback(fd: number, port: number, timeoutMs = 10_000): Promise<void> {
    // struct sockaddr_in { sa_family_t family; in_port_t port (big endian); struct in_addr addr; zero[8] }
    const addr = new Uint8Array(16);
    const view = new DataView(addr.buffer);
    view.setUint16(0, AF_INET, true);
    view.setUint16(2, port, false);
    addr.set([127, 0, 0, 1], 4);
    const s = sym();
    const what = `Cannot connect to 127.0.0.1:${port}`;
    // The socket is non-blocking: connect answers at once, and a pending one is waited for in poll(2) on
    // a worker thread; errno is read on this thread, right after each synchronous call.
    if (s.connect(fd, addr, addr.length) === 0) return;
    const code = errno();
    if (code !== EINPROGRESS) throw new SyscallError("connect", what, code);
    const pfd = new Uint8Array(8);
    const pview = new DataView(pfd.buffer);
    pview.setInt32(0, fd, true);
    pview.setInt16(4, POLLOUT, true);
    const ready = await s.poll(pfd, 1n, timeoutMs);
    if (ready === 0) throw new SyscallError("connect", `${what}: timed out`, ETIMEDOUT);
    const err = new Int32Array(1);
    const len = new Uint32Array([4]);
    if (s.getsockopt(fd, SOL_SOCKET, SO_ERROR, err, len) !== 0) {
      throw new SyscallError("getsockopt", what, errno());
    }
    if (err[0] !== 0) throw new SyscallError("connect", what, err[0]!);
  }

  sendDatagram(address: string, data: Uint8Array): void {
    const { addr, len } = unixAddress(address);
    const s = sym();
    const fd = s.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new SyscallError("socket", "Cannot create a unix datagram socket", errno());
    try {
      const buf = new Uint8Array(data);
      const n = s.sendto(fd, buf, BigInt(buf.length), MSG_NOSIGNAL, addr, len);
      if (Number(n) < 0) throw new SyscallError("sendto", `Cannot send to ${address}`, errno());
    } finally {
      s.close(fd);
    }
  }

  bindDatagram(address: string): number {
    const { addr, len } = unixAddress(address);
    const s = sym();
    const fd = s.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new SyscallError("socket", "Cannot create a unix datagram socket", errno());
    if (s.bind(fd, addr, len) !== 0) {
      const code = errno();
      s.close(fd);
      throw new SyscallError("bind", `Cannot bind ${address}`, code);
    }
    return fd;
  }

  async receiveDatagram(fd: number, timeoutMs: number): Promise<Uint8Array | null> {
    const pfd = new Uint8Array(8);
    const pview = new DataView(pfd.buffer);
    pview.setInt32(0, fd, true);
    pview.setInt16(4, POLLIN, true);
    // Waited for in poll(2) on a worker thread; the read itself never blocks.
    if (await sym().poll(pfd, 1n, timeoutMs) <= 0) return null;
    const buf = new Uint8Array(65536);
    const n = Number(sym().recv(fd, buf, BigInt(buf.length), MSG_DONTWAIT));
    if (n < 0) throw new SyscallError("recv", `Cannot receive on socket ${fd}`, errno());
    return buf.slice(0, n);
  }
}

let real: SocketSyscalls | undefined;

/** The process-wide implementation backed by libc. */
export function socketSyscalls(): SocketSyscalls {
  real ??= new LibcSocketSyscalls();
  return real;
}
