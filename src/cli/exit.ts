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
