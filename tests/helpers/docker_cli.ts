/**
 * The Berth CLI with the Docker-style read verbs added, for tests to run as a process while the verbs
 * are not yet registered in src/cli/verbs.ts: `deno run -A tests/helpers/docker_cli.ts <berth args>`.
 */
import { CommanderError } from "commander";
import { ConnectError } from "@connectrpc/connect";
import { buildProgram } from "../../src/cli/main.ts";
import type { Verb } from "../../src/cli/verbs.ts";

export const DOCKER_READ_VERBS: readonly Verb[] = [
  { names: ["ps"], load: async () => (await import("../../src/cli/commands/ps.ts")).psCommand },
  {
    names: ["inspect"],
    load: async () => (await import("../../src/cli/commands/inspect.ts")).inspectCommand,
  },
  { names: ["stats"], load: async () => (await import("../../src/cli/commands/stats.ts")).statsCommand },
  { names: ["top"], load: async () => (await import("../../src/cli/commands/top.ts")).topCommand },
  { names: ["port"], load: async () => (await import("../../src/cli/commands/port.ts")).portCommand },
  { names: ["rename"], load: async () => (await import("../../src/cli/commands/rename.ts")).renameCommand },
  { names: ["pause"], load: async () => (await import("../../src/cli/commands/pause.ts")).pauseCommand },
  {
    names: ["unpause"],
    load: async () => (await import("../../src/cli/commands/unpause.ts")).unpauseCommand,
  },
  { names: ["wait"], load: async () => (await import("../../src/cli/commands/wait.ts")).waitCommand },
];

if (import.meta.main) {
  const program = await buildProgram(DOCKER_READ_VERBS);
  let code = 0;
  try {
    await program.parseAsync(Deno.args, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) code = err.exitCode;
    else {
      const msg = err instanceof ConnectError
        ? err.rawMessage
        : err instanceof Error
        ? err.message
        : String(err);
      console.error(`berth: ${msg}`);
      code = 1;
    }
  }
  Deno.exit(code);
}
