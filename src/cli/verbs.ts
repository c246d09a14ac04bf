/**
 * The CLI's verbs and the module each one lives in, imported only when that verb runs: `berth version`
 * need not load the image tooling, the task stdio or the metrics schemas of the other verbs.
 */
import type { Command } from "commander";

export interface Verb {
  /** The command's name, then its aliases (as the module declares them: a test holds them equal). */
  readonly names: readonly string[];
  /** Imports the verb's module and returns the function that adds it to the program. */
  readonly load: () => Promise<(program: Command) => void>;
}

/** Every verb, in the order `berth --help` lists them. */
export const VERBS: readonly Verb[] = [
  { names: ["version"], load: async () => (await import("./commands/version.ts")).versionCommand },
  {
    names: ["namespaces", "namespace", "ns"],
    load: async () => (await import("./commands/namespaces.ts")).namespacesCommand,
  },
  { names: ["plugins", "plugin"], load: async () => (await import("./commands/plugins.ts")).pluginsCommand },
  { names: ["events", "event"], load: async () => (await import("./commands/events.ts")).eventsCommand },
  { names: ["images", "image", "i"], load: async () => (await import("./commands/images.ts")).imagesCommand },
  { names: ["content"], load: async () => (await import("./commands/content.ts")).contentCommand },
  { names: ["leases", "lease"], load: async () => (await import("./commands/leases.ts")).leasesCommand },
  {
    names: ["snapshots", "snapshot"],
    load: async () => (await import("./commands/snapshots.ts")).snapshotsCommand,
  },
  { names: ["run"], load: async () => (await import("./commands/run.ts")).runCommand },
  {
    names: ["containers", "c", "container"],
    load: async () => (await import("./commands/containers.ts")).containersCommand,
  },
  { names: ["tasks", "t", "task"], load: async () => (await import("./commands/tasks.ts")).tasksCommand },
];

/** The global flags that take a value: in the next argument, or as `--flag=value`, `-avalue`. */
const VALUE_FLAGS: readonly string[] = [
  "-a",
  "--address",
  "-n",
  "--namespace",
  "--timeout",
  "--connect-timeout",
  "--data-root",
  "--cni-path",
  "--cni-netconfpath",
];
const BOOLEAN_FLAGS: readonly string[] = ["--debug"];

/** Whether `arg` is a global flag with its value in the same argument. */
function hasInlineValue(arg: string): boolean {
  return VALUE_FLAGS.some((flag) => {
    const prefix = flag.startsWith("--") ? `${flag}=` : flag;
    return arg.startsWith(prefix) && arg.length > flag.length;
  });
}

/**
 * The verbs whose modules `args` needs: the one its first argument after the global flags names, as
 * ctr's flags come before the verb. All of them when there is no verb or it is not one of ours (help,
 * `--version`, a typo), or a flag before it is not a global one: commander then answers (and prints its
 * help after an error) exactly as it would with every verb loaded.
 */
export function verbsFor(args: readonly string[], verbs: readonly Verb[] = VERBS): readonly Verb[] {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (VALUE_FLAGS.includes(arg)) i++;
    else if (!BOOLEAN_FLAGS.includes(arg) && !hasInlineValue(arg)) {
      // The verb; or an unknown flag, `--`, `help`, a typo: no verb of ours.
      const verb = verbs.find((v) => v.names.includes(arg));
      return verb ? [verb] : verbs;
    }
  }
  return verbs;
}
