/**
 * The core's error taxonomy, after containerd's errdefs. Core code throws these; the service edge maps
 * them to gRPC/Connect codes in one place (src/services/errors.ts).
 */

import { SyscallError } from "../../ffi/libc.ts";

export type ErrorKind =
  | "not_found"
  | "already_exists"
  | "invalid_argument"
  | "failed_precondition"
  | "unavailable"
  | "not_implemented"
  | "aborted"
  | "canceled"
  | "deadline_exceeded"
  | "permission_denied"
  | "internal"
  /** A failure with no better kind, where containerd answers codes.Unknown (its CRI's plain errors). */
  | "unknown";

export class BerthError extends Error {
  readonly kind: ErrorKind;

  constructor(kind: ErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.kind = kind;
    this.name = `BerthError(${kind})`;
  }
}

export const notFound = (msg: string, options?: ErrorOptions) => new BerthError("not_found", msg, options);
export const alreadyExists = (msg: string, options?: ErrorOptions) =>
  new BerthError("already_exists", msg, options);
export const invalidArgument = (msg: string, options?: ErrorOptions) =>
  new BerthError("invalid_argument", msg, options);
export const failedPrecondition = (msg: string, options?: ErrorOptions) =>
  new BerthError("failed_precondition", msg, options);
export const unavailable = (msg: string, options?: ErrorOptions) =>
  new BerthError("unavailable", msg, options);
export const notImplemented = (msg: string, options?: ErrorOptions) =>
  new BerthError("not_implemented", msg, options);
export const deadlineExceeded = (msg: string, options?: ErrorOptions) =>
  new BerthError("deadline_exceeded", msg, options);
export const aborted = (msg: string, options?: ErrorOptions) => new BerthError("aborted", msg, options);
export const internal = (msg: string, options?: ErrorOptions) => new BerthError("internal", msg, options);
export const unknownError = (msg: string, options?: ErrorOptions) => new BerthError("unknown", msg, options);

/** The kind of any thrown value; errors from outside the core count as internal. */
export function errorKind(err: unknown): ErrorKind {
  if (err instanceof BerthError) return err.kind;
  if (err instanceof SyscallError && err.kind) return err.kind;
  if (err instanceof DOMException && err.name === "AbortError") return "canceled";
  if (err instanceof DOMException && err.name === "TimeoutError") return "deadline_exceeded";
  return "internal";
}

export const isNotFound = (err: unknown) => errorKind(err) === "not_found";
export const isAlreadyExists = (err: unknown) => errorKind(err) === "already_exists";
