import type { Command } from "commander";
import type { ConnectError } from "@connectrpc/connect";
import { version } from "../version.ts";
import { ExitRequest } from "./exit.ts";
import { skipEmptyClearTimeout } from "../base/timers.ts";
import { commandMode, CTR_VERBS, type Verb, VERBS, verbsFor } from "./verbs.ts";

/**
 * The ctr-style CLI with the given verbs (default: all). Global flags and environment follow ctr's so
 * scripts carry over.
 */
export async function buildProgram(verbs: readonly Verb[] = VERBS, name = "berth"): Promise<Command> {
  // Both load node-compat (commander, and node:crypto under the Docker paths): `ctr run` skips them.
  const defaults = (await import("./context.ts")).globalDefaults();
  const { Command } = await import("commander");
  const program = new Command(name)
    .description(
      "Berth: a containerd-compatible container runtime.\n" +
        "Run `berth daemon` to start the daemon; every other command is a client of it, like ctr.",
    )
    .version(`berth ${version}`, "-v, --version", "print the version")
    .option(
      "-a, --address <path>",
      "address of the daemon's socket (env BERTH_ADDRESS, CONTAINERD_ADDRESS)",
      defaults.address,
    )
    .option(
      "-n, --namespace <name>",
      "namespace to use (env BERTH_NAMESPACE, CONTAINERD_NAMESPACE)",
      defaults.namespace,
    )
    .option("--timeout <duration>", "total timeout for commands (e.g. 10s)")
    .option("--connect-timeout <duration>", "timeout for connecting to the daemon")
    .option("--debug", "enable debug output in logs")
    .option(
      "--data-root <dir>",
      "where the Docker-style verbs keep state (env BERTH_DATA_ROOT)",
      defaults.dataRoot,
    )
    .option("--cni-path <dirs>", "CNI plugin folders, colon-separated (env BERTH_CNI_PATH)", defaults.cniPath)
    .option(
      "--cni-netconfpath <dir>",
      "CNI network configs folder (env BERTH_CNI_NETCONFPATH)",
      defaults.cniNetconfpath,
    )
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });
  program.command("daemon").description("Run the daemon (see `berth daemon --help`)");
  program.command("shim").description("Run a task shim (started by the daemon)");
  // ctr's flag order: global flags before the command, so `run IMG ID sh -c …` passes `-c` to the container.
  program.enablePositionalOptions();
  const adders = await Promise.all(verbs.map((v) => v.load()));
  for (const add of adders) add(program);
  for (const sub of program.commands) sub.exitOverride();
  return program;
}

export async function cliMain(argv: string[], invokedAs = ""): Promise<number> {
  skipEmptyClearTimeout();
  const { mode, args } = commandMode(argv, invokedAs);
  try {
    // The most common verbs skip commander (and the node-compat it loads): see fast_flags.ts.
    if (mode === "ctr") {
      const run = (await import("./ctr_run_fast.ts")).parseCtrRun(args);
      if (run) {
        const oneCall = await import("./ctr_run_one_call.ts");
        if (oneCall.servesInOneCall(run) && await oneCall.runInOneCall(run)) return 0;
        await (await import("./commands/run.ts")).runContainer(run.ref, run.id, run);
        return 0;
      }
    }
    if (args.includes("pull")) {
      const pull = (await import("./images_pull_fast.ts")).parseImagesPull(args);
      if (pull) {
        const { pullAction } = await import("./commands/pull.ts");
        await pullAction(pull.globals, pull.ref, { ...pull.flags, unpack: !pull.flags.skipUnpack });
        return 0;
      }
    }
    if (mode !== "ctr" && args.includes("run")) {
      const run = (await import("./docker_run_fast.ts")).parseDockerRun(args);
      if (run) {
        const { dockerRun } = await import("./commands/docker_run.ts");
        return await dockerRun(run.image, run.command, run.flags, run.globals);
      }
    }
    if (mode !== "ctr" && args.includes("rm")) {
      const rm = (await import("./docker_rm_fast.ts")).parseDockerRm(args);
      if (rm) {
        await (await import("./commands/docker_life.ts")).removeContainers(rm.globals, rm.refs, rm.flags);
        return 0;
      }
    }
    return await parseAndRun(args, mode);
  } catch (err) {
    if (err instanceof ExitRequest) return err.exitCode;
    console.error(`berth: ${describe(err)}`);
    return 1;
  }
}

async function parseAndRun(args: string[], mode: "ctr" | "berth"): Promise<number> {
  const { CommanderError } = await import("commander");
  const verbs = mode === "ctr" ? CTR_VERBS : VERBS;
  const program = await buildProgram(verbsFor(args, verbs), mode === "ctr" ? "ctr" : "berth");
  if (args.length === 0) {
    program.outputHelp();
    return 0;
  }
  try {
    await program.parseAsync(args, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    throw err;
  }
}

/** A ConnectError, known without loading connect-es (the one-call run makes its call without it). */
function isConnectError(err: unknown): err is ConnectError {
  return err instanceof Error && err.name === "ConnectError" && "rawMessage" in err;
}

function describe(err: unknown): string {
  if (isConnectError(err)) {
    if (/ECONNREFUSED|ENOENT|EACCES/.test(err.rawMessage)) {
      return `Cannot reach the daemon: ${err.rawMessage}; is \`berth daemon\` running and --address right?`;
    }
    return err.rawMessage;
  }
  return err instanceof Error ? err.message : String(err);
}
