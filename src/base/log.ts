/**
 * The logger the core writes to. The daemon supplies the implementation (src/daemon/log.ts: text or
 * JSON lines); the core only depends on this shape, so in-process callers can pass their own.
 */
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "panic";
export type Fields = Record<string, unknown>;

export interface Logger {
  trace(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  with(fields: Fields): Logger;
  enabled(level: LogLevel): boolean;
}

/** The few levels that most parts log at: what a caller must give them (the daemon's Logger fits). */
export type BasicLogger = Pick<Logger, "debug" | "info" | "warn">;
