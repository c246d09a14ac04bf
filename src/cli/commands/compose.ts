/**
 * `berth compose …` as docker compose v2 / nerdctl compose: the project flags on `compose`, the verbs
 * below it. Loading and the verbs are src/docker/compose; the runtime behind them is
 * makeComposeBackend (src/cli/docker/compose_backend.ts), imported only when a verb needs it.
 */
import type { Command } from "commander";
import type { ComposeBackend, ComposeProject, ContainerInfo } from "../../docker/compose/mod.ts";
import { dockerPaths, repeatable, withClient } from "../context.ts";
import { printTable } from "../table.ts";
import { exitWith } from "../task_io.ts";

interface ProjectFlags {
  file?: string[];
  projectName?: string;
  projectDirectory?: string;
  envFile?: string;
}

const compose = () => import("../../docker/compose/mod.ts");

/** The `compose` command of a verb. */
const composeOf = (cmd: Command): Command => cmd.parent!;

async function projectOf(cmd: Command): Promise<ComposeProject> {
  const flags = composeOf(cmd).opts<ProjectFlags>();
  const { loadProject } = await compose();
  return loadProject({
    ...(flags.file?.length ? { files: flags.file } : {}),
    ...(flags.projectName ? { projectName: flags.projectName } : {}),
    ...(flags.projectDirectory ? { projectDirectory: flags.projectDirectory } : {}),
    ...(flags.envFile ? { envFile: flags.envFile } : {}),
  });
}

/** Loads the project, then runs `fn` with the runtime's backend. */
async function withProject<T>(
  cmd: Command,
  fn: (project: ComposeProject, backend: ComposeBackend) => Promise<T>,
): Promise<T> {
  const project = await projectOf(cmd);
  const { makeComposeBackend } = await import("../docker/compose_backend.ts");
  const paths = dockerPaths(cmd);
  return await withClient(cmd, (client) => fn(project, makeComposeBackend(paths, client)));
}

const progress = (line: string) => console.error(line);

function seconds(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`Invalid ${flag} "${value}": give whole seconds`);
  return n;
}

/** An AbortSignal that fires on the first Ctrl-C (SIGINT) or SIGTERM; `dispose` removes the handlers. */
function interruptSignal(): { signal: AbortSignal; dispose: () => void } {
  const abort = new AbortController();
  const onSignal = () => abort.abort(new Error("interrupted"));
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  return {
    signal: abort.signal,
    dispose: () => {
      Deno.removeSignalListener("SIGINT", onSignal);
      Deno.removeSignalListener("SIGTERM", onSignal);
    },
  };
}

function portsText(c: ContainerInfo): string {
  return (c.ports ?? [])
    .map((p) => `${p.hostIP}:${p.hostPort}->${p.containerPort}/${p.protocol}`)
    .join(", ");
}

export function composeCommand(program: Command): void {
  const root = program.command("compose").description("Define and run multi-container applications")
    .option(
      "-f, --file <file>",
      "compose file (repeatable; default compose.yaml in the project directory)",
      repeatable,
    )
    .option("-p, --project-name <name>", "project name (default: name:, or the directory's name)")
    .option("--project-directory <dir>", "the project's directory (default: the first file's)")
    .option("--env-file <file>", "the variables file (default: .env in the project directory)")
    .enablePositionalOptions();

  root.command("up").description("Create and start the services' containers")
    .argument("[service...]", "only these services and their dependencies")
    .option("-d, --detach", "start in the background and return")
    .option("--remove-orphans", "remove containers of services no longer in the file")
    .option("--no-start", "create what is missing, start nothing")
    .option("-t, --timeout <seconds>", "stop timeout when recreating or leaving an attached up")
    .action(async (
      services: string[],
      opts: { detach?: boolean; removeOrphans?: boolean; start: boolean; timeout?: string },
      cmd: Command,
    ) => {
      const { up } = await compose();
      const timeoutS = seconds(opts.timeout, "--timeout");
      const interrupt = interruptSignal();
      try {
        await withProject(cmd, (project, backend) =>
          up(project, backend, {
            services,
            detach: opts.detach ?? false,
            removeOrphans: opts.removeOrphans ?? false,
            noStart: !opts.start,
            progress,
            signal: interrupt.signal,
            write: (text) => console.log(text),
            ...(timeoutS !== undefined ? { timeoutS } : {}),
          }));
      } finally {
        interrupt.dispose();
      }
    });

  root.command("down").description("Stop and remove the project's containers and networks")
    .option("-v, --volumes", "remove named volumes and anonymous volumes too")
    .option("--remove-orphans", "remove containers of services no longer in the file")
    .option("-t, --timeout <seconds>", "stop timeout")
    .action(async (opts: { volumes?: boolean; removeOrphans?: boolean; timeout?: string }, cmd: Command) => {
      const { down } = await compose();
      const timeoutS = seconds(opts.timeout, "--timeout");
      await withProject(cmd, (project, backend) =>
        down(project, backend, {
          volumes: opts.volumes ?? false,
          removeOrphans: opts.removeOrphans ?? false,
          progress,
          ...(timeoutS !== undefined ? { timeoutS } : {}),
        }));
    });

  root.command("ps").description("List the project's containers")
    .argument("[service...]")
    .option("-a, --all", "stopped containers too")
    .option("-q, --quiet", "only display IDs")
    .option("--format <format>", '"table" or "json"')
    .action(
      async (services: string[], opts: { all?: boolean; quiet?: boolean; format?: string }, cmd: Command) => {
        const { ps, LABELS } = await compose();
        const rows = await withProject(
          cmd,
          (project, backend) => ps(project, backend, { all: opts.all ?? false, services }),
        );
        if (opts.quiet) {
          for (const r of rows) {
            console.log(r.id);
          }
          return;
        }
        if (opts.format === "json") {
          console.log(JSON.stringify(rows.map((r) => ({
            ID: r.id,
            Name: r.name,
            Image: r.image,
            Service: r.labels[LABELS.service] ?? "",
            State: r.running ? "running" : r.exitCode !== undefined ? "exited" : "created",
            Status: r.status ?? "",
            ExitCode: r.exitCode ?? 0,
            Publishers: (r.ports ?? []).map((p) => ({
              URL: p.hostIP,
              TargetPort: p.containerPort,
              PublishedPort: p.hostPort,
              Protocol: p.protocol,
            })),
          }))));
          return;
        }
        if (opts.format && opts.format !== "table") {
          throw new Error(`Unknown --format "${opts.format}": table or json`);
        }
        printTable([
          ["NAME", "IMAGE", "SERVICE", "STATUS", "PORTS"],
          ...rows.map((r) => [r.name, r.image, r.labels[LABELS.service] ?? "", r.status ?? "", portsText(r)]),
        ], 3);
      },
    );

  root.command("logs").description("Show the services' logs")
    .argument("[service...]")
    .option("-f, --follow", "follow the logs")
    .option("-n, --tail <lines>", "lines from the end of each log")
    .option("-t, --timestamps", "show timestamps")
    .action(async (
      services: string[],
      opts: { follow?: boolean; tail?: string; timestamps?: boolean },
      cmd: Command,
    ) => {
      const { logs } = await compose();
      const tail = opts.tail === undefined || opts.tail === "all" ? undefined : seconds(opts.tail, "--tail");
      const interrupt = interruptSignal();
      try {
        await withProject(cmd, (project, backend) =>
          logs(project, backend, (text) => console.log(text), {
            services,
            follow: opts.follow ?? false,
            timestamps: opts.timestamps ?? false,
            signal: interrupt.signal,
            ...(tail !== undefined ? { tail } : {}),
          }));
      } finally {
        interrupt.dispose();
      }
    });

  root.command("exec").description("Run a command in a running service container")
    .argument("<service>")
    .argument("<command...>")
    .option("-T, --no-TTY", "no pseudo-terminal (default: one when stdin is a terminal)")
    .option("-e, --env <K=V>", "set an environment variable (repeatable)", repeatable)
    .option("-w, --workdir <dir>", "working directory of the command")
    .option("-u, --user <user>", "user of the command")
    .option("--index <n>", "the replica (default 1)")
    .option("-d, --detach", "not supported: the command runs attached")
    .passThroughOptions()
    .action(async (
      service: string,
      command: string[],
      opts: {
        TTY: boolean;
        env?: string[];
        workdir?: string;
        user?: string;
        index?: string;
        detach?: boolean;
      },
      cmd: Command,
    ) => {
      if (opts.detach) throw new Error("berth compose exec -d is not supported");
      const { exec } = await compose();
      const index = opts.index === undefined ? 1 : Number(opts.index);
      if (!Number.isInteger(index) || index < 1) throw new Error(`Invalid --index "${opts.index}"`);
      const tty = opts.TTY && Deno.stdin.isTerminal();
      const code = await withProject(cmd, (project, backend) =>
        exec(project, backend, {
          service,
          command,
          index,
          tty,
          interactive: true,
          ...(opts.env ? { env: opts.env } : {}),
          ...(opts.workdir ? { workingDir: opts.workdir } : {}),
          ...(opts.user ? { user: opts.user } : {}),
        }));
      exitWith(code);
    });

  for (const verb of ["stop", "start", "restart"] as const) {
    const sub = root.command(verb).description(
      verb === "stop"
        ? "Stop the services' running containers"
        : verb === "start"
        ? "Start the services' existing containers"
        : "Restart the services' containers",
    ).argument("[service...]");
    if (verb !== "start") sub.option("-t, --timeout <seconds>", "stop timeout");
    sub.action(async (services: string[], opts: { timeout?: string }, cmd: Command) => {
      const engine = await compose();
      const timeoutS = seconds(opts.timeout, "--timeout");
      await withProject(cmd, (project, backend) =>
        engine[verb](project, backend, {
          services,
          progress,
          ...(timeoutS !== undefined ? { timeoutS } : {}),
        }));
    });
  }

  root.command("pull").description("Pull the services' images")
    .argument("[service...]")
    .action(async (services: string[], _opts: unknown, cmd: Command) => {
      const { pull } = await compose();
      await withProject(cmd, (project, backend) => pull(project, backend, { services, progress }));
    });

  root.command("config").description("Validate the compose files and print the normalized project")
    .option("--services", "print the service names, one a line")
    .option("-q, --quiet", "only validate")
    .action(async (opts: { services?: boolean; quiet?: boolean }, cmd: Command) => {
      const { config } = await compose();
      const project = await projectOf(cmd);
      if (opts.quiet) return;
      Deno.stdout.writeSync(new TextEncoder().encode(config(project, { services: opts.services ?? false })));
    });
}
