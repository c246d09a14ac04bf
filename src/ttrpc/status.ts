/**
 * gRPC status codes on the ttrpc wire and their mapping to the core's error kinds, as containerd's errdefs
 * ToGRPC/FromGRPC do, so that a Berth peer and a containerd peer understand each other's errors.
 */

import { BerthError, type ErrorKind, errorKind } from "../base/errors.ts";

export const Code = {
  ok: 0,
  canceled: 1,
  unknown: 2,
  invalidArgument: 3,
  deadlineExceeded: 4,
  notFound: 5,
  alreadyExists: 6,
  permissionDenied: 7,
  resourceExhausted: 8,
  failedPrecondition: 9,
  aborted: 10,
  outOfRange: 11,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  dataLoss: 15,
  unauthenticated: 16,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

const codeOfKind: Record<ErrorKind, Code> = {
  not_found: Code.notFound,
  already_exists: Code.alreadyExists,
  invalid_argument: Code.invalidArgument,
  failed_precondition: Code.failedPrecondition,
  unavailable: Code.unavailable,
  not_implemented: Code.unimplemented,
  aborted: Code.aborted,
  canceled: Code.canceled,
  deadline_exceeded: Code.deadlineExceeded,
  permission_denied: Code.permissionDenied,
  internal: Code.internal,
  unknown: Code.unknown,
};

const kindOfCode = new Map<number, ErrorKind>(
  Object.entries(codeOfKind).map(([kind, code]) => [code, kind as ErrorKind]),
);

/**
 * An error that crossed the ttrpc wire (or was raised by the ttrpc layer itself). It is a BerthError, so
 * core code can test its kind; `code` keeps the exact gRPC code, which matters for codes without a kind
 * of their own (ResourceExhausted, Unknown, …: kind "internal").
 */
export class TtrpcError extends BerthError {
  readonly code: number;

  constructor(code: number, message: string, options?: ErrorOptions) {
    super(kindOfCode.get(code) ?? "internal", message, options);
    this.code = code;
    this.name = `TtrpcError(${code})`;
  }
}

/** The gRPC code a thrown value travels as. */
export function codeOf(err: unknown): number {
  if (err instanceof TtrpcError) return err.code;
  return codeOfKind[errorKind(err)];
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
