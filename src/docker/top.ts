/**
 * `docker top`'s table (`ps -ef`'s columns: UID PID PPID C STIME TTY TIME CMD) of a container's
 * processes, read from the host's /proc as procps reads it: no `ps` binary is needed on the host.
 */
import { bootTime, CLOCK_TICKS, statFields } from "./status.ts";

export const TOP_TITLES = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"] as const;

/** What one process's /proc files say. */
export interface ProcFiles {
  readonly pid: number;
  readonly stat: string;
  /** /proc/<pid>/status (for the real uid). */
  readonly status: string;
  /** /proc/<pid>/cmdline: NUL-separated, empty for kernel threads and zombies. */
  readonly cmdline: string;
}

export interface TopContext {
  readonly now: Date;
  readonly boot: Date;
  /** Uid → user name (the host's /etc/passwd, as `ps` shows them). */
  readonly users: ReadonlyMap<number, string>;
}

const pad2 = (n: number) => String(n).padStart(2, "0");
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** procps's STIME: "HH:MM" today, "MonDD" this year, else the year. */
export function startText(start: Date, now: Date): string {
  if (now.getTime() - start.getTime() < 24 * 3_600_000 && start.getDate() === now.getDate()) {
    return `${pad2(start.getHours())}:${pad2(start.getMinutes())}`;
  }
  if (start.getFullYear() === now.getFullYear()) return `${MONTHS[start.getMonth()]}${pad2(start.getDate())}`;
  return String(start.getFullYear());
}

/** procps's TIME: "[DD-]HH:MM:SS" of CPU time. */
export function cpuTimeText(seconds: number): string {
  const s = Math.floor(seconds);
  const days = Math.floor(s / 86400);
  const hms = `${pad2(Math.floor((s % 86400) / 3600))}:${pad2(Math.floor((s % 3600) / 60))}:${pad2(s % 60)}`;
  return days > 0 ? `${days}-${hms}` : hms;
}

/** The controlling terminal from stat's tty_nr: "?" for none, "pts/N", "ttyN". */
export function ttyText(ttyNr: number): string {
  if (ttyNr === 0) return "?";
  const major = (ttyNr >> 8) & 0xfff;
  const minor = (ttyNr & 0xff) | ((ttyNr >> 12) & 0xfff00);
  if (major >= 136 && major <= 143) return `pts/${minor + (major - 136) * 256}`;
  if (major === 4 && minor < 64) return `tty${minor}`;
  if (major === 4) return `ttyS${minor - 64}`;
  return `${major}:${minor}`;
}

/** One `ps -ef` row of a process. */
export function topRow(p: ProcFiles, ctx: TopContext): string[] {
  const f = statFields(p.stat);
  // Indexes after the command: 0 state, 1 ppid, 4 tty_nr, 11 utime, 12 stime, 19 starttime.
  const ppid = f[1] ?? "0";
  const cpuSeconds = (Number(f[11] ?? 0) + Number(f[12] ?? 0)) / CLOCK_TICKS;
  const start = new Date(ctx.boot.getTime() + (Number(f[19] ?? 0) * 1000) / CLOCK_TICKS);
  const elapsed = Math.max((ctx.now.getTime() - start.getTime()) / 1000, 0);
  // procps: C is the CPU time over the elapsed time, in percent, capped at 99.
  const c = elapsed > 0 ? Math.min(Math.floor((cpuSeconds * 100) / elapsed), 99) : 0;
  const uid = Number(/^Uid:\s+(\d+)/m.exec(p.status)?.[1] ?? 0);
  const args = p.cmdline.split("\0").filter((a, i, all) => a !== "" || i < all.length - 1);
  const comm = p.stat.slice(p.stat.indexOf("(") + 1, p.stat.lastIndexOf(")"));
  return [
    ctx.users.get(uid) ?? String(uid),
    String(p.pid),
    ppid,
    String(c),
    startText(start, ctx.now),
    ttyText(Number(f[4] ?? 0)),
    cpuTimeText(cpuSeconds),
    args.length > 0 ? args.join(" ") : `[${comm}]`,
  ];
}

/** Uid → name from a passwd file's text. */
export function parsePasswd(text: string): Map<number, string> {
  const users = new Map<number, string>();
  for (const line of text.split("\n")) {
    const [name, , uid] = line.split(":");
    if (name && uid !== undefined && /^\d+$/.test(uid) && !users.has(Number(uid))) {
      users.set(Number(uid), name);
    }
  }
  return users;
}

/** The `ps -ef` rows of `pids` from the host's /proc (a process gone meanwhile is left out). */
export function topRows(pids: readonly number[], now: Date = new Date()): string[][] {
  let users = new Map<number, string>();
  try {
    users = parsePasswd(Deno.readTextFileSync("/etc/passwd"));
  } catch { /* numeric uids */ }
  const ctx: TopContext = { now, boot: bootTime(), users };
  const rows: string[][] = [];
  for (const pid of pids) {
    try {
      const read = (f: string) => Deno.readTextFileSync(`/proc/${pid}/${f}`);
      rows.push(topRow({ pid, stat: read("stat"), status: read("status"), cmdline: read("cmdline") }, ctx));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return rows;
}
