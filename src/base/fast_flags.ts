/**
 * The plain forms of flags, read without commander for the verbs people run most (`ctr run`, `berth
 * run`): commander is CommonJS over node:events, node:process and node:child_process, and loading it
 * with node-compat costs a process ~30 ms of CPU before its first call. Anything this reader does not
 * know for certain (help, `--version`, an unknown flag, `--flag=` on a boolean, a missing value, `--`)
 * makes it answer undefined, and the caller hands the whole command line to commander as before.
 */

/** How a flag takes its value: none (true), the next argument, or the next argument appended to a list. */
export type FlagKind = "boolean" | "value" | "list";

export interface FastFlag {
  readonly key: string;
  readonly kind: FlagKind;
}

export const fastFlag = (key: string, kind: FlagKind): FastFlag => ({ key, kind });

/**
 * Reads flags of `table` from `args[at]` into `into` up to the first argument that is not a flag; returns
 * that argument's index, or undefined at a flag this reader leaves to commander. With `clusters`, `-it`
 * reads as `-i -t` when every letter is a boolean flag of the table (commander's combined short flags).
 * `explain` hears why the reader stopped short (for callers that report it instead of falling back).
 */
export function readFlags(
  args: readonly string[],
  at: number,
  table: ReadonlyMap<string, FastFlag>,
  into: Record<string, unknown>,
  options: { clusters?: boolean; explain?: (why: string) => void } = {},
): number | undefined {
  const stop = (why: string) => {
    options.explain?.(why);
    return undefined;
  };
  while (at < args.length) {
    const arg = args[at]!;
    if (arg.length < 2 || arg[0] !== "-") return at;
    if (options.clusters && arg.length > 2 && arg[1] !== "-") {
      const letters = [...arg.slice(1)].map((c) => table.get(`-${c}`));
      if (letters.some((f) => f?.kind !== "boolean")) return stop(`Unknown option ${arg}`);
      for (const f of letters) into[f!.key] = true;
      at++;
      continue;
    }
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const f = table.get(name);
    if (f === undefined) return stop(`Unknown option ${name}`);
    if (eq > 0 && f.kind === "boolean") return stop(`Option ${name} takes no value`);
    if (f.kind === "boolean") {
      into[f.key] = true;
      at++;
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : args[at + 1];
    if (value === undefined) return stop(`Option ${name} needs a value`);
    into[f.key] = f.kind === "list" ? [...(into[f.key] as string[] | undefined ?? []), value] : value;
    at += eq > 0 ? 1 : 2;
  }
  return at;
}
