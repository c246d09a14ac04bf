/** Linux signals by name, and containerd's signal.ParseSignal (the CLI's kill, an image's StopSignal). */
import { invalidArgument } from "./errors.ts";

/** Linux signal numbers by name (x86_64 and arm64 agree on these). */
export const SIGNALS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};

/** `SIGKILL`, `KILL`, `kill` or `9` (containerd's signal.ParseSignal); SIGRTMIN+n too. */
export function parseSignal(value: string): number {
  if (/^\d+$/.test(value)) {
    const n = Number(value);
    if (n >= 1 && n <= 64) return n;
  }
  const name = value.toUpperCase().startsWith("SIG") ? value.toUpperCase() : `SIG${value.toUpperCase()}`;
  const known = SIGNALS[name];
  if (known !== undefined) return known;
  const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(name);
  if (rt && Number(rt[1] ?? 0) <= 30) return 34 + Number(rt[1] ?? 0);
  throw invalidArgument(`Invalid signal "${value}": use a name like SIGTERM or a number`);
}
