/**
 * Structured logging in containerd's shapes: logfmt-like text lines
 * (`time="…" level=info msg="…" key=value`) or one JSON object per line.
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
}

const encoder = new TextEncoder();
const toStderr = (line: string) => {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
};

export function createLogger(options: LoggerOptions = {}): Logger {
  const state = {
    level: options.level ?? "info",
    format: options.format ?? "text",
    write: options.write ?? toStderr,
  };
  return new FieldLogger(state, {});
}

interface LoggerState {
  level: LogLevel;
  format: LogFormat;
  write: (line: string) => void;
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
    this.#state.write(
      this.#state.format === "json" ? jsonLine(time, level, msg, all) : textLine(time, level, msg, all),
    );
  }
}

function jsonLine(time: string, level: LogLevel, msg: string, fields: Fields): string {
  const obj: Fields = { time, level, msg };
  for (const [k, v] of Object.entries(fields)) obj[k] = v instanceof Error ? v.message : v;
  return JSON.stringify(obj);
}

function textLine(time: string, level: LogLevel, msg: string, fields: Fields): string {
  let line = `time="${time}" level=${level} msg=${quote(msg)}`;
  for (const [k, v] of Object.entries(fields)) {
    const s = v instanceof Error ? v.message : typeof v === "string" ? v : JSON.stringify(v);
    line += ` ${k}=${quote(s ?? "")}`;
  }
  return line;
}

function quote(s: string): string {
  return /^[A-Za-z0-9_.:/@+-]+$/.test(s) ? s : JSON.stringify(s);
}

/** A logger that drops everything, for tests and in-process callers. */
export const silentLogger: Logger = createLogger({ level: "panic", write: () => {} });
