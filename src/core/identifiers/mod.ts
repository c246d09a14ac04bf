import { invalidArgument } from "../../base/errors.ts";

/**
 * containerd's identifier rules, shared by namespaces, containers, leases and snapshots keys:
 * alphanumerics separated by single `.`, `_` or `-`, at most 76 characters.
 */
const maxLength = 76;
const pattern = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

export function validateIdentifier(kind: string, value: string): void {
  if (value === "") throw invalidArgument(`Invalid ${kind}: the identifier must not be empty`);
  if (value.length > maxLength) {
    throw invalidArgument(`Invalid ${kind} "${value}": longer than ${maxLength} characters`);
  }
  if (!pattern.test(value)) {
    throw invalidArgument(
      `Invalid ${kind} "${value}": use letters and digits separated by single ".", "_" or "-"`,
    );
  }
}
