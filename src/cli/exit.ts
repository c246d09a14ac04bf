/**
 * A verb's request to end the CLI with a status and no message (a container's own exit status).
 * Its own class, not commander's CommanderError: `ctr run` runs without loading commander.
 */
export class ExitRequest extends Error {
  constructor(readonly exitCode: number) {
    super(`Exit with status ${exitCode}`);
    this.name = "ExitRequest";
  }
}

/** Exits the CLI with `code` and no message (the container's own status). */
export function exitWith(code: number): void {
  if (code !== 0) throw new ExitRequest(code);
}
