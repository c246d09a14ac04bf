/**
 * Process syscalls a shim needs (child subreaper, kill, waitpid, pidfd), from libc through Deno.dlopen,
 * behind the ProcessSyscalls interface so that code above can run against a recording fake.
 *
 * Owning every child without stealing Deno's: Deno.Command waits for its own children by pid (tokio's
 * process driver, on SIGCHLD), so a reaper that called waitpid(-1) would collect their statuses first and
 * Deno's `child.status` would then fail or hang. A shim therefore never waits on -1. It reaps only
 * zombies that are its children (ppid == getpid(), seen in /proc) and that it did not spawn through
 * Deno.Command: the containers' init and exec processes that runc leaves behind and that the kernel
 * reparents to the shim because it is a child subreaper, plus any other orphan. Every Deno.Command pid is
 * put in the skip set right after spawn() (synchronously, so no reap can run in between) and taken out once
 * its `status` has settled. reapOrphans() does exactly this; SIGCHLD (Deno.addSignalListener) says when
 * to call it. A pidfd (pidfdOpen) names a known pid without the pid-reuse race for kill.
 */

import { lazySymbols } from "./lazy_symbols.ts";
import { SyscallError, type SyscallKind } from "./libc.ts";

export { SyscallError };

export interface WaitStatus {
  readonly pid: number;
  /** The exit code when the process exited normally. */
  readonly exitCode?: number;
  /** The signal that ended the process. */
  readonly signal?: number;
  /** containerd's exit status: the exit code, or 128 + signal. */
  readonly status: number;
}

export interface ProcessSyscalls {
  getpid(): number;
  /** prctl(PR_SET_CHILD_SUBREAPER): orphans of our descendants are reparented to us instead of init. */
  setChildSubreaper(on: boolean): void;
  isChildSubreaper(): boolean;
  kill(pid: number, signal: number): void;
  /** waitpid(pid, WNOHANG): the status if `pid` has exited (and is now reaped), null while it runs. */
  waitpidNoHang(pid: number): WaitStatus | null;
  setsid(): number;
  /** pidfd_open(2): a descriptor naming the process; close() it. */
  pidfdOpen(pid: number): number;
  pidfdSendSignal(pidfd: number, signal: number): void;
  close(fd: number): void;
  /** Pids of our exited, not yet reaped children (zombies whose parent is this process). */
  zombieChildren(): number[];
  /**
   * posix_spawn(3) of `path` with `args` after argv[0]: a child that no Deno.Command waits for, so the
   * caller's reaper gets its exit. It gets the descriptors `fds` names (its number → ours) and /dev/null
   * for 0, 1 and 2 otherwise; SIGPIPE at its default (Deno ignores it) and no blocked signals.
   */
  spawn(path: string, args: readonly string[], options?: SpawnOptions): number;
}

export interface SpawnOptions {
  /** The child's whole environment, as NAME=value; empty when absent. */
  readonly env?: readonly string[];
  /** Descriptors of the child (key) and the descriptor of ours each is a copy of (value). */
  readonly fds?: ReadonlyMap<number, number>;
}

export const PR_SET_CHILD_SUBREAPER = 36;
export const PR_GET_CHILD_SUBREAPER = 37;
const WNOHANG = 1;
const F_DUPFD_CLOEXEC = 1030;
const O_RDWR = 2;
const SIGPIPE = 13;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
/** glibc's posix_spawn_file_actions_t (80 bytes), posix_spawnattr_t (336) and sigset_t (128), rounded up. */
const SPAWN_STRUCT_BYTES = 512;
const SYS_PIDFD_SEND_SIGNAL = 424n;
const SYS_PIDFD_OPEN = 434n;

export const Signal = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGUSR2: 12,
  SIGTERM: 15,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
} as const;

/** What a process call's errno means above (ESRCH, ECHILD: not found; EPERM: permission denied). */
const errnoKinds: Record<number, SyscallKind> = {
  1: "permission_denied",
  2: "not_found",
  3: "not_found",
  4: "aborted",
  9: "invalid_argument",
  10: "not_found",
  13: "permission_denied",
  22: "invalid_argument",
  38: "not_implemented",
};

function syscallError(call: string, errno: number): SyscallError {
  return new SyscallError(call, `Syscall ${call} failed`, errno, errnoKinds[errno]);
}

/** Decodes a wait status word (WIFEXITED / WTERMSIG). */
export function decodeWaitStatus(pid: number, raw: number): WaitStatus {
  const sig = raw & 0x7f;
  if (sig === 0) {
    const exitCode = (raw >> 8) & 0xff;
    return { pid, exitCode, status: exitCode };
  }
  return { pid, signal: sig, status: 128 + sig };
}

const symbols = {
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  getpid: { parameters: [], result: "i32" },
  setpriority: { parameters: ["i32", "u32", "i32"], result: "i32" },
  setsid: { parameters: [], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  syscall: { parameters: ["i64", "i64", "i64", "i64", "i64"], result: "i64" },
  __errno_location: { parameters: [], result: "pointer" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  posix_spawn: { parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"], result: "i32" },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  posix_spawn_file_actions_addopen: { parameters: ["buffer", "i32", "buffer", "i32", "u32"], result: "i32" },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigmask: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawnattr_setsigdefault: { parameters: ["buffer", "buffer"], result: "i32" },
  sigemptyset: { parameters: ["buffer"], result: "i32" },
  sigaddset: { parameters: ["buffer", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

type Libc = Deno.DynamicLibrary<typeof symbols>["symbols"];

const libc: Libc = lazySymbols(symbols);

function lib(): Libc {
  return libc;
}

/** errno of the last failed call; read right after it, on the same (main) thread. */
function errno(l: Libc): number {
  const p = l.__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

const PRIO_PROCESS = 0;

/**
 * Sets the nice value of every thread of process `pid`, this one by default (Linux keeps one per thread:
 * setpriority on the process id changes the main thread only). Threads started later inherit their
 * creator's. Raising a priority needs CAP_SYS_NICE. Returns how many threads it changed.
 */
export function setProcessNice(value: number, pid: number | "self" = "self"): number {
  const l = lib();
  let changed = 0;
  for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
    if (l.setpriority(PRIO_PROCESS, Number(entry.name), value) === 0) changed++;
  }
  return changed;
}

/** The real syscalls, through libc. The library is opened on first use and kept for the process. */
export class LibcProcessSyscalls implements ProcessSyscalls {
  getpid(): number {
    return lib().getpid();
  }

  setChildSubreaper(on: boolean): void {
    const l = lib();
    if (l.prctl(PR_SET_CHILD_SUBREAPER, on ? 1n : 0n, 0n, 0n, 0n) !== 0) {
      throw syscallError("prctl(PR_SET_CHILD_SUBREAPER)", errno(l));
    }
  }

  isChildSubreaper(): boolean {
    const l = lib();
    const out = new Int32Array(1);
    const ptr = Deno.UnsafePointer.value(Deno.UnsafePointer.of(out));
    if (l.prctl(PR_GET_CHILD_SUBREAPER, BigInt(ptr), 0n, 0n, 0n) !== 0) {
      throw syscallError("prctl(PR_GET_CHILD_SUBREAPER)", errno(l));
    }
    return out[0] !== 0;
  }

  kill(pid: number, signal: number): void {
    const l = lib();
    if (l.kill(pid, signal) !== 0) throw syscallError(`kill(${pid}, ${signal})`, errno(l));
  }

  waitpidNoHang(pid: number): WaitStatus | null {
    if (pid <= 0) throw syscallError(`waitpid(${pid})`, 22); // never -1: see the note at the top
    const l = lib();
    const status = new Int32Array(1);
    const got = l.waitpid(pid, status, WNOHANG);
    if (got < 0) throw syscallError(`waitpid(${pid})`, errno(l));
    if (got === 0) return null;
    return decodeWaitStatus(got, status[0]!);
  }

  setsid(): number {
    const l = lib();
    const sid = l.setsid();
    if (sid < 0) throw syscallError("setsid()", errno(l));
    return sid;
  }

  pidfdOpen(pid: number): number {
    const l = lib();
    const fd = l.syscall(SYS_PIDFD_OPEN, BigInt(pid), 0n, 0n, 0n);
    if (fd < 0n) throw syscallError(`pidfd_open(${pid})`, errno(l));
    return Number(fd);
  }

  pidfdSendSignal(pidfd: number, signal: number): void {
    const l = lib();
    if (l.syscall(SYS_PIDFD_SEND_SIGNAL, BigInt(pidfd), BigInt(signal), 0n, 0n) < 0n) {
      throw syscallError(`pidfd_send_signal(${pidfd}, ${signal})`, errno(l));
    }
  }

  close(fd: number): void {
    const l = lib();
    if (l.close(fd) !== 0) throw syscallError(`close(${fd})`, errno(l));
  }

  spawn(path: string, args: readonly string[], options: SpawnOptions = {}): number {
    const l = lib();
    const fds = options.fds ?? new Map<number, number>();
    // dup2 onto a number that a later mapping still reads from would lose that descriptor, and dup2 of a
    // descriptor onto itself keeps its close-on-exec flag: move such sources above every target first.
    const top = Math.max(2, ...fds.keys());
    const moved: number[] = [];
    const sources = new Map<number, number>();
    try {
      for (const [target, source] of fds) {
        let from = source;
        if (source <= top) {
          from = l.fcntl(source, F_DUPFD_CLOEXEC, top + 1);
          if (from < 0) throw syscallError(`fcntl(${source}, F_DUPFD_CLOEXEC)`, errno(l));
          moved.push(from);
        }
        sources.set(target, from);
      }
      return spawnWith(l, path, args, options.env ?? [], sources);
    } finally {
      for (const fd of moved) l.close(fd);
    }
  }

  zombieChildren(): number[] {
    const self = this.getpid();
    const out: number[] = [];
    for (const pid of childrenOf(self) ?? allPids()) {
      let stat: string;
      try {
        stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      } catch {
        continue; // exited and reaped while we looked
      }
      // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ")".
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (state === "Z" && Number(ppid) === self) out.push(pid);
    }
    return out;
  }
}

const encoder = new TextEncoder();

function cstring(s: string): Uint8Array<ArrayBuffer> {
  const bytes = encoder.encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** A NULL-terminated array of pointers to `strings`, which must stay referenced while it is used. */
function pointerArray(strings: readonly Uint8Array<ArrayBuffer>[]): Uint8Array<ArrayBuffer> {
  const ptrs = new BigUint64Array(strings.length + 1);
  strings.forEach((s, i) => ptrs[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s))));
  return new Uint8Array(ptrs.buffer);
}

function spawnWith(
  l: Libc,
  path: string,
  args: readonly string[],
  env: readonly string[],
  fds: ReadonlyMap<number, number>,
): number {
  const actions = new Uint8Array(SPAWN_STRUCT_BYTES);
  const attr = new Uint8Array(SPAWN_STRUCT_BYTES);
  const call = (name: string, rc: number) => {
    if (rc !== 0) throw syscallError(`${name}(${path})`, rc);
  };
  call("posix_spawn_file_actions_init", l.posix_spawn_file_actions_init(actions));
  try {
    call("posix_spawnattr_init", l.posix_spawnattr_init(attr));
    try {
      const devNull = cstring("/dev/null");
      for (const target of [0, 1, 2]) {
        if (fds.has(target)) continue;
        call(
          "posix_spawn_file_actions_addopen",
          l.posix_spawn_file_actions_addopen(actions, target, devNull, O_RDWR, 0),
        );
      }
      for (const [target, source] of fds) {
        call("posix_spawn_file_actions_adddup2", l.posix_spawn_file_actions_adddup2(actions, source, target));
      }
      const none = new Uint8Array(SPAWN_STRUCT_BYTES);
      l.sigemptyset(none);
      const pipe = new Uint8Array(SPAWN_STRUCT_BYTES);
      l.sigemptyset(pipe);
      l.sigaddset(pipe, SIGPIPE);
      call("posix_spawnattr_setsigmask", l.posix_spawnattr_setsigmask(attr, none));
      call("posix_spawnattr_setsigdefault", l.posix_spawnattr_setsigdefault(attr, pipe));
      call(
        "posix_spawnattr_setflags",
        l.posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
      );
      const argv = [path, ...args].map(cstring);
      const envp = env.map(cstring);
      const pid = new Int32Array(1);
      // glibc reports a failed exec (ENOENT, EACCES) as this call's result.
      call(
        "posix_spawn",
        l.posix_spawn(
          new Uint8Array(pid.buffer),
          cstring(path),
          actions,
          attr,
          pointerArray(argv),
          pointerArray(envp),
        ),
      );
      return pid[0]!;
    } finally {
      l.posix_spawnattr_destroy(attr);
    }
  } finally {
    l.posix_spawn_file_actions_destroy(actions);
  }
}

/**
 * Reaps our exited children except those in `skip` (pids Deno.Command spawned and still waits for).
 * Returns their statuses; call it on SIGCHLD.
 */
export function reapOrphans(sys: ProcessSyscalls, skip: ReadonlySet<number>): WaitStatus[] {
  const out: WaitStatus[] = [];
  for (const pid of sys.zombieChildren()) {
    if (skip.has(pid)) continue;
    try {
      const st = sys.waitpidNoHang(pid);
      if (st) out.push(st);
    } catch (err) {
      // ECHILD: someone else reaped it between the scan and now; nothing to report.
      if (!(err instanceof SyscallError && err.errno === 10)) throw err;
    }
  }
  return out;
}

export interface RecordedCall {
  readonly name: keyof ProcessSyscalls;
  readonly args: readonly number[] | readonly boolean[];
}

/**
 * A recording fake for tests of code above ffi/: set `exits` for waitpid results, `zombies` for the scan,
 * and `failures` to make a call throw a SyscallError with that errno.
 */
export class FakeProcessSyscalls implements ProcessSyscalls {
  readonly calls: RecordedCall[] = [];
  readonly exits = new Map<number, WaitStatus>();
  readonly failures = new Map<keyof ProcessSyscalls, number>();
  zombies: number[] = [];
  pid = 4242;
  subreaper = false;
  /** The pid spawn() answers next. */
  nextPid = 5000;
  #nextFd = 100;

  #record(name: keyof ProcessSyscalls, ...args: number[] | boolean[]): void {
    this.calls.push({ name, args });
    const e = this.failures.get(name);
    if (e !== undefined) throw syscallError(name, e);
  }

  getpid(): number {
    this.#record("getpid");
    return this.pid;
  }
  setChildSubreaper(on: boolean): void {
    this.#record("setChildSubreaper", on);
    this.subreaper = on;
  }
  isChildSubreaper(): boolean {
    this.#record("isChildSubreaper");
    return this.subreaper;
  }
  kill(pid: number, signal: number): void {
    this.#record("kill", pid, signal);
  }
  waitpidNoHang(pid: number): WaitStatus | null {
    this.#record("waitpidNoHang", pid);
    const st = this.exits.get(pid);
    if (st) {
      this.exits.delete(pid);
      this.zombies = this.zombies.filter((z) => z !== pid);
    }
    return st ?? null;
  }
  setsid(): number {
    this.#record("setsid");
    return this.pid;
  }
  pidfdOpen(pid: number): number {
    this.#record("pidfdOpen", pid);
    return this.#nextFd++;
  }
  pidfdSendSignal(pidfd: number, signal: number): void {
    this.#record("pidfdSendSignal", pidfd, signal);
  }
  close(fd: number): void {
    this.#record("close", fd);
  }
  zombieChildren(): number[] {
    this.#record("zombieChildren");
    return [...this.zombies];
  }
  spawn(_path: string, _args: readonly string[], _options?: SpawnOptions): number {
    this.#record("spawn");
    return this.nextPid++;
  }
}

/**
 * The children of process `pid`, from each of its threads' /proc/<pid>/task/<tid>/children (an orphan
 * reparented to a subreaper joins one of its threads): a few small reads where walking /proc reads one
 * stat file per process on the host (~2 ms with a hundred processes, ~20 with a thousand, on the
 * shim's event loop). Undefined on a kernel without CONFIG_PROC_CHILDREN.
 */
function childrenOf(pid: number): number[] | undefined {
  const out: number[] = [];
  try {
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      let text: string;
      try {
        text = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound && task.name === String(pid)) return undefined;
        continue; // a thread that ended while we looked
      }
      for (const child of text.split(/\s+/)) if (child !== "") out.push(Number(child));
    }
  } catch {
    return undefined;
  }
  return out;
}

/** Every process on the host, by pid. */
function allPids(): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) if (/^\d+$/.test(entry.name)) out.push(Number(entry.name));
  return out;
}
