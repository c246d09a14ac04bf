/**
 * The Berth CLI with the network and internal verbs added when src/cli/verbs.ts does not list them yet,
 * so tests/docker_network_test.ts runs them as a separate process either way (as runc runs the hook).
 *
 *   deno run -A tests/helpers/berth_network_verbs.ts --data-root … network ls
 */
import { CommanderError } from "commander";
import { buildProgram } from "../../src/cli/main.ts";
import { type Verb, VERBS, verbsFor } from "../../src/cli/verbs.ts";

const EXTRA: readonly Verb[] = [
  {
    names: ["network", "networks"],
    load: async () => (await import("../../src/cli/commands/network.ts")).networkCommand,
  },
  {
    names: ["internal"],
    load: async () => (await import("../../src/cli/commands/internal.ts")).internalCommand,
  },
];

/** Whether src/cli/verbs.ts registers the verbs itself (then main.ts serves them). */
export const registered = EXTRA.every((e) => VERBS.some((v) => v.names.includes(e.names[0]!)));

if (import.meta.main) {
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
}
