/**
 * `berth rm` (the Docker form) without commander, as docker_run_fast.ts does for `berth run`: the plain
 * forms of the global flags and of `-f`/`-v` (combined too: `-fv`); undefined for anything else, which
 * cliMain then hands to commander. Commander and the node-compat it loads cost every `rm` ~30 ms before
 * its first call. docker_rm_fast_test.ts holds the two parses equal.
 */
import { globalDefaults } from "./context.ts";
import type { GlobalOptions } from "./globals.ts";
import { GLOBAL_FLAGS } from "./ctr_run_fast.ts";
import { type FastFlag as Flag, fastFlag as flag, readFlags } from "../base/fast_flags.ts";

/** `berth rm`'s flags (commands/docker_life.ts), by every spelling. */
const DOCKER_RM_FLAGS: ReadonlyMap<string, Flag> = new Map([
  ["-f", flag("force", "boolean")],
  ["--force", flag("force", "boolean")],
  ["-v", flag("volumes", "boolean")],
  ["--volumes", flag("volumes", "boolean")],
]);

export interface DockerRmArgs {
  readonly refs: string[];
  readonly flags: { force?: boolean; volumes?: boolean };
  readonly globals: GlobalOptions;
}

/** `args` (Docker mode) as `rm` with plain flags, or undefined for commander to parse. */
export function parseDockerRm(args: readonly string[]): DockerRmArgs | undefined {
  const globals: Record<string, unknown> = { ...globalDefaults() };
  let at = readFlags(args, 0, GLOBAL_FLAGS, globals);
  if (at === undefined || args[at] !== "rm") return undefined;
  const flags: Record<string, unknown> = {};
  const refs: string[] = [];
  // Commander takes options anywhere among the arguments of `rm`.
  for (at++; at < args.length;) {
    if (args[at]!.startsWith("-")) {
      const next = readFlags(args, at, DOCKER_RM_FLAGS, flags, { clusters: true });
      if (next === undefined || next === at) return undefined;
      at = next;
    } else {
      refs.push(args[at++]!);
    }
  }
  if (refs.length === 0) return undefined;
  return { refs, flags, globals: globals as unknown as GlobalOptions };
}
