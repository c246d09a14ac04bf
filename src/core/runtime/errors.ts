import { BerthError } from "../../base/errors.ts";

export { invalidArgument, notFound, unavailable } from "../../base/errors.ts";

export const deadlineExceeded = (msg: string) => new BerthError("deadline_exceeded", msg);

/** The logging the runtime needs; the daemon's Logger fits it. */
export interface RuntimeLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}
