/**
 * Structured logging in containerd's shapes: logfmt-like text lines
 * (`time="…" level=info msg="…" key=value`) or one JSON object per line. Under systemd, when stderr is
 * the journal, each line starts with its syslog priority (`<3>` err … `<7>` debug), which journald strips
 * and indexes, so `journalctl -u berth -p err` finds the errors.
 */

import type { Fields, Logger, LogLevel } from "../base/log.ts";

export type { Fields, Logger, LogLevel };
export type LogFormat = "text" | "json";

const ranks: Record<LogLevel, number> = {
  trace: 0,
  debug: 1,
  info: 2,
  warn: 3,
  error: 4,
  fatal: 5,
  panic: 6,
};

export function parseLogLevel(value: string): LogLevel {
  const v = value.toLowerCase() === "warning" ? "warn" : value.toLowerCase();
  if (v in ranks) return v as LogLevel;
  throw new Error(`Unknown log level "${value}": use trace, debug, info, warn, error or fatal`);
}

export function parseLogFormat(value: string): LogFormat {
  if (value === "text" || value === "json") return value;
  throw new Error(`Unknown log format "${value}": use text or json`);
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go; stderr by default. */
  write?: (line: string) => void;
  /** Start each line with its syslog priority (`<6>`), for journald; see stderrIsJournal(). */
  journal?: boolean;
}

/** syslog(3) priorities, the numbers journald reads from a `<N>` line prefix. */
const priorities: Record<LogLevel, number> = {
  trace: 7,
  debug: 7,
  info: 6,
  warn: 4,
  error: 3,
  fatal: 2,
  panic: 0,
};

const encoder = new TextEncoder();

/**
 * One write per line, and the rest of a short write written before anything else: lines of one process
 * never interleave, whatever their length. A line that cannot be written (stderr closed) is dropped:
 * logging must not throw into the caller.
 */
function toStderr(line: string): void {
  const bytes = encoder.encode(line + "\n");
  for (let off = 0; off < bytes.length;) {
    try {
      off += Deno.stderr.writeSync(bytes.subarray(off));
    } catch (err) {
      if (err instanceof Deno.errors.WouldBlock || err instanceof Deno.errors.Interrupted) continue;
      return;
    }
  }
}

/**
 * Whether stderr is a stream to the journal: systemd sets JOURNAL_STREAM to that stream's
 * `<device>:<inode>` (systemd.exec(5)), and a process whose stderr was redirected since sees other numbers.
 */
export function stderrIsJournal(journalStream = Deno.env.get("JOURNAL_STREAM")): boolean {
  const m = /^(\d+):(\d+)$/.exec(journalStream ?? "");
  if (!m) return false;
  try {
    const st = Deno.statSync("/proc/self/fd/2");
    return String(st.dev) === m[1] && String(st.ino) === m[2];
  } catch {
    return false;
  }
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const state = {
    level: options.level ?? "info",
    format: options.format ?? "text",
    write: options.write ?? toStderr,
    journal: options.journal ?? false,
  };
  return new FieldLogger(state, {});
}

interface LoggerState {
  level: LogLevel;
  format: LogFormat;
  write: (line: string) => void;
  journal: boolean;
}

class FieldLogger implements Logger {
  readonly #state: LoggerState;
  readonly #fields: Fields;

  constructor(state: LoggerState, fields: Fields) {
    this.#state = state;
    this.#fields = fields;
  }

  trace(msg: string, fields?: Fields) {
    this.#log("trace", msg, fields);
  }
  debug(msg: string, fields?: Fields) {
    this.#log("debug", msg, fields);
  }
  info(msg: string, fields?: Fields) {
    this.#log("info", msg, fields);
  }
  warn(msg: string, fields?: Fields) {
    this.#log("warn", msg, fields);
  }
  error(msg: string, fields?: Fields) {
    this.#log("error", msg, fields);
  }

  with(fields: Fields): Logger {
    return new FieldLogger(this.#state, { ...this.#fields, ...fields });
  }

  enabled(level: LogLevel): boolean {
    return ranks[level] >= ranks[this.#state.level];
  }

  #log(level: LogLevel, msg: string, fields?: Fields) {
    if (!this.enabled(level)) return;
    const all: Fields = { ...this.#fields, ...fields };
    const time = new Date().toISOString();
    const state = this.#state;
    const line = state.format === "json" ? jsonLine(time, level, msg, all) : textLine(time, level, msg, all);
    state.write(state.journal ? `<${priorities[level]}>${line}` : line);
  }
}

function jsonLine(time: string, level: LogLevel, msg: string, fields: Fields): string {
  const obj: Fields = { time, level, msg };
  for (const [k, v] of Object.entries(fields)) obj[k] = v instanceof Error ? v.message : v;
  try {
    return JSON.stringify(obj);
  } catch {
    // A field JSON cannot hold (a bigint, a cycle) costs that field, never the line.
    for (const [k, v] of Object.entries(obj)) obj[k] = jsonSafe(v);
    return JSON.stringify(obj);
  }
}

function textLine(time: string, level: LogLevel, msg: string, fields: Fields): string {
  let line = `time="${time}" level=${level} msg=${quote(msg)}`;
  for (const [k, v] of Object.entries(fields)) {
    const s = v instanceof Error ? v.message : typeof v === "string" ? v : textOf(v);
    line += ` ${quote(k)}=${quote(s ?? "")}`;
  }
  return line;
}

function textOf(v: unknown): string | undefined {
  if (typeof v === "bigint") return String(v);
  try {
    return JSON.stringify(v);
  } catch {
    const safe = jsonSafe(v);
    return typeof safe === "string" ? safe : JSON.stringify(safe);
  }
}

/** `v`, or the nearest value JSON can hold: bigints as strings, else a note of what went wrong. */
function jsonSafe(v: unknown): unknown {
  try {
    JSON.stringify(v);
    return v;
  } catch {
    try {
      return JSON.parse(JSON.stringify(v, (_k, x) => typeof x === "bigint" ? x.toString() : x));
    } catch (err) {
      return `[cannot serialise: ${(err as Error).message.split("\n")[0]}]`;
    }
  }
}

function quote(s: string): string {
  return /^[A-Za-z0-9_.:/@+-]+$/.test(s) ? s : JSON.stringify(s);
}

/** A logger that drops everything, for tests and in-process callers. */
export const silentLogger: Logger = createLogger({ level: "panic", write: () => {} });
