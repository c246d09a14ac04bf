/**
 * The Berth CLI with the volume and cp verbs added when src/cli/verbs.ts does not list them yet, so
 * their integration test runs them as a separate process (stdin and stdout included) either way.
 *
 *   deno run -A tests/helpers/berth_extra_verbs.ts --address … volume ls
 */
import { CommanderError } from "commander";
import { buildProgram } from "../../src/cli/main.ts";
import { type Verb, VERBS, verbsFor } from "../../src/cli/verbs.ts";

const EXTRA: readonly Verb[] = [
  {
    names: ["volume", "volumes"],
    load: async () => (await import("../../src/cli/commands/volume.ts")).volumeCommand,
  },
  { names: ["cp"], load: async () => (await import("../../src/cli/commands/cp.ts")).cpCommand },
];

const verbs = [...VERBS, ...EXTRA.filter((e) => !VERBS.some((v) => v.names.includes(e.names[0]!)))];
const program = await buildProgram(verbsFor(Deno.args, verbs));
let code = 0;
try {
  await program.parseAsync(Deno.args, { from: "user" });
} catch (err) {
  code = err instanceof CommanderError ? err.exitCode : 1;
  if (!(err instanceof CommanderError)) console.error(`berth: ${(err as Error).message}`);
}
Deno.exit(code);
