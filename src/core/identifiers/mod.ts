import { invalidArgument } from "../../base/errors.ts";

/**
 * containerd's identifier rules (identifiers/validate.go), shared by namespaces, containers, tasks and
 * exec ids: alphanumerics separated by single `.`, `_` or `-`, at most 76 characters. An identifier that
 * passes is safe as one path component, so every id a path is built from is checked before the path is.
 */
const maxLength = 76;
/** The pattern as Go's regexp prints it, so that error messages read as containerd's. */
const patternSource = "^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$";
const pattern = new RegExp(patternSource);

/** containerd's own message for an invalid identifier, or undefined when `value` is valid. */
export function identifierProblem(value: string): string | undefined {
  if (value === "") return "identifier must not be empty";
  if (value.length > maxLength) {
    return `identifier ${JSON.stringify(value)} greater than maximum length (${maxLength} characters)`;
  }
  if (!pattern.test(value)) return `identifier ${JSON.stringify(value)} must match ${patternSource}`;
  return undefined;
}

/**
 * Throws an invalid-argument error worded as containerd's where it wraps the check, e.g.
 * `invalid exec id ../zz: identifier "../zz" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$`.
 */
export function validateIdentifier(kind: string, value: string): void {
  const problem = identifierProblem(value);
  if (problem !== undefined) throw invalidArgument(`invalid ${kind} ${value}: ${problem}`);
}
