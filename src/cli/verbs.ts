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

const life = (name: string): Verb => ({
  names: [name],
  load: async () => (await import("./commands/docker_life.ts")).LIFECYCLE_VERBS[name]!,
});

/** ctr's nouns, the same in both modes. */
const CTR_NOUNS: readonly Verb[] = [
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
];
const CTR_CONTAINERS: readonly Verb[] = [
  {
    names: ["containers", "c", "container"],
    load: async () => (await import("./commands/containers.ts")).containersCommand,
  },
  { names: ["tasks", "t", "task"], load: async () => (await import("./commands/tasks.ts")).tasksCommand },
];

/** ctr's verbs exactly: `berth ctr …`, or the binary invoked as `ctr`. */
export const CTR_VERBS: readonly Verb[] = [
  ...CTR_NOUNS,
  { names: ["run"], load: async () => (await import("./commands/run.ts")).runCommand },
  ...CTR_CONTAINERS,
];

/** Every verb of `berth`, in the order `berth --help` lists them: Docker's verbs, then ctr's nouns. */
export const VERBS: readonly Verb[] = [
  { names: ["run"], load: async () => (await import("./commands/docker_run.ts")).dockerRunCommand },
  { names: ["create"], load: async () => (await import("./commands/docker_run.ts")).dockerCreateCommand },
  ...["start", "stop", "restart", "kill", "rm", "logs", "exec"].map(life),
  { names: ["ps"], load: async () => (await import("./commands/ps.ts")).psCommand },
  { names: ["inspect"], load: async () => (await import("./commands/inspect.ts")).inspectCommand },
  { names: ["stats"], load: async () => (await import("./commands/stats.ts")).statsCommand },
  { names: ["top"], load: async () => (await import("./commands/top.ts")).topCommand },
  { names: ["port"], load: async () => (await import("./commands/port.ts")).portCommand },
  { names: ["cp"], load: async () => (await import("./commands/cp.ts")).cpCommand },
  { names: ["rename"], load: async () => (await import("./commands/rename.ts")).renameCommand },
  { names: ["pause"], load: async () => (await import("./commands/pause.ts")).pauseCommand },
  { names: ["unpause"], load: async () => (await import("./commands/unpause.ts")).unpauseCommand },
  { names: ["wait"], load: async () => (await import("./commands/wait.ts")).waitCommand },
  {
    names: ["network", "networks"],
    load: async () => (await import("./commands/network.ts")).networkCommand,
  },
  { names: ["volume", "volumes"], load: async () => (await import("./commands/volume.ts")).volumeCommand },
  { names: ["compose"], load: async () => (await import("./commands/compose.ts")).composeCommand },
  { names: ["internal"], load: async () => (await import("./commands/internal.ts")).internalCommand },
  ...CTR_NOUNS,
  ...CTR_CONTAINERS,
  { names: ["ctr"], load: () => Promise.resolve(ctrCommand) },
];

/** `berth ctr` in help; cliMain() takes the word away and parses the rest with CTR_VERBS. */
function ctrCommand(program: Command): void {
  program.command("ctr").description("ctr's commands exactly, e.g. `berth ctr run IMAGE ID CMD…`")
    .allowUnknownOption().argument("[args...]");
}

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
 * Which command set `args` asks for: ctr's when the verb is `ctr` (that word taken out) or the
 * executable is named `ctr`, else Berth's own.
 */
export function commandMode(
  args: readonly string[],
  invokedAs = "",
): { readonly mode: "ctr" | "berth"; readonly args: string[] } {
  if (invokedAs === "ctr") return { mode: "ctr", args: [...args] };
  const at = verbIndex(args);
  if (at >= 0 && args[at] === "ctr") {
    return { mode: "ctr", args: [...args.slice(0, at), ...args.slice(at + 1)] };
  }
  return { mode: "berth", args: [...args] };
}

/** Where the verb is: the first argument after the global flags (-1 when there is none). */
function verbIndex(args: readonly string[]): number {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (VALUE_FLAGS.includes(arg)) i++;
    else if (!BOOLEAN_FLAGS.includes(arg) && !hasInlineValue(arg)) return i;
  }
  return -1;
}

/**
 * The verbs whose modules `args` needs: the one its first argument after the global flags names, as
 * ctr's flags come before the verb. All of them when there is no verb or it is not one of ours (help,
 * `--version`, a typo), or a flag before it is not a global one: commander then answers (and prints its
 * help after an error) exactly as it would with every verb loaded.
 */
export function verbsFor(args: readonly string[], verbs: readonly Verb[] = VERBS): readonly Verb[] {
  const at = verbIndex(args);
  if (at < 0) return verbs;
  // The verb; or an unknown flag, `--`, `help`, a typo: no verb of ours.
  const verb = verbs.find((v) => v.names.includes(args[at]!));
  return verb ? [verb] : verbs;
}
