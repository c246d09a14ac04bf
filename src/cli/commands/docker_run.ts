/**
 * `berth run` and `berth create`, the Docker way (nerdctl's flags): `berth run -d --name web -p 8080:80
 * IMAGE [CMD…]`. ctr's form stays under `berth ctr run`.
 */
import type { Command } from "commander";
import { invalidArgument } from "../../base/errors.ts";
import {
  parseBytes,
  parseEnvFile,
  parsePositive,
  parsePublish,
  parseRestart,
  parseVolume,
} from "../../docker/flags.ts";
import { LABELS } from "../../docker/labels.ts";
import type { RunOptions } from "../../docker/run_options.ts";
import { dockerPaths, dockerPathsOf, type GlobalOptions, repeatable, withClient } from "../context.ts";
import { globalsOf } from "../globals.ts";
import { parseLabelArgs } from "../table.ts";
import { exitWith, runTask } from "../task_io.ts";
import { createDockerContainer, type LogOptions } from "../docker/create.ts";
import { realHost } from "../docker/host_real.ts";
import { removeContainer, startContainer } from "../docker/lifecycle.ts";
import { defaultSnapshotter } from "./snapshots.ts";

export interface DockerRunFlags {
  detach?: boolean;
  interactive?: boolean;
  tty?: boolean;
  rm?: boolean;
  name?: string;
  publish?: string[];
  env?: string[];
  envFile?: string[];
  volume?: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  restart?: string;
  memory?: string;
  cpus?: string;
  pidsLimit?: string;
  hostname?: string;
  label?: string[];
  network?: string[];
  net?: string[];
  dns?: string[];
  readOnly?: boolean;
  logOpt?: string[];
  snapshotter: string;
  runtime: string;
  plainHttp?: boolean;
  key?: string[];
}

function dockerCreateOptions(cmd: Command): Command {
  return cmd
    .option("-i, --interactive", "keep STDIN open")
    .option("-t, --tty", "allocate a pseudo-TTY")
    .option("--name <name>", "assign a name to the container")
    .option(
      "-p, --publish <[ip:]host:container[/proto]>",
      "publish a container's port to the host",
      repeatable,
    )
    .option("-e, --env <K=V>", "set an environment variable", repeatable)
    .option("--env-file <file>", "read environment variables from a file", repeatable)
    .option("-v, --volume <src:dst[:ro]>", "bind-mount a path or mount a named volume", repeatable)
    .option("-w, --workdir <dir>", "working directory inside the container")
    .option("-u, --user <user[:group]>", "user name or uid (and group) to run as")
    .option("--entrypoint <cmd>", "overwrite the image's ENTRYPOINT")
    .option("--restart <policy>", "no, always, on-failure[:N] or unless-stopped", "no")
    .option("-m, --memory <bytes>", "memory limit (e.g. 512m)")
    .option("--cpus <n>", "number of CPUs (e.g. 0.5)")
    .option("--pids-limit <n>", "limit the number of processes")
    .option("-h, --hostname <name>", "the container's host name")
    .option("-l, --label <K=V>", "set a label on the container", repeatable)
    .option(
      "--network, --net <name>",
      "connect to a network: bridge (default), host, none or NAME",
      repeatable,
    )
    .option("--dns <ip>", "set a DNS server", repeatable)
    .option("--read-only", "mount the container's root filesystem read-only")
    .option("--log-opt <k=v>", "json-file log options: max-size=10m, max-file=3", repeatable)
    .option("--snapshotter <name>", "snapshotter", defaultSnapshotter())
    .option("--runtime <name>", "runtime", "io.containerd.runc.v2")
    .option("--plain-http", "pull a missing image over plain HTTP")
    .option("--key <file>", "private key (PEM) to decrypt an encrypted image (repeatable)", repeatable)
    .argument("<image>")
    .argument("[command...]")
    .passThroughOptions();
}

/** The RunOptions of the flags. */
export async function runOptionsOf(image: string, command: string[], f: DockerRunFlags): Promise<RunOptions> {
  const env: string[] = [];
  for (const file of f.envFile ?? []) env.push(...parseEnvFile(await Deno.readTextFile(file)));
  env.push(...(f.env ?? []).map((e) => e.includes("=") ? e : `${e}=${Deno.env.get(e) ?? ""}`));
  return {
    image,
    name: f.name,
    command: command.length ? command : undefined,
    entrypoint: f.entrypoint === undefined ? undefined : f.entrypoint === "" ? [] : [f.entrypoint],
    env,
    ports: (f.publish ?? []).flatMap(parsePublish),
    volumes: (f.volume ?? []).map((v) => parseVolume(v)),
    networks: [...(f.network ?? []), ...(f.net ?? [])],
    restart: parseRestart(f.restart ?? "no"),
    labels: parseLabelArgs(f.label ?? []),
    workingDir: f.workdir,
    user: f.user,
    hostname: f.hostname,
    dns: f.dns,
    memoryBytes: f.memory === undefined ? undefined : parseBytes("--memory", f.memory),
    cpus: f.cpus === undefined ? undefined : parsePositive("--cpus", f.cpus),
    pidsLimit: f.pidsLimit === undefined ? undefined : parsePositive("--pids-limit", f.pidsLimit),
    tty: !!f.tty,
    interactive: !!f.interactive,
    readOnly: !!f.readOnly,
  };
}

/** `--log-opt max-size=10m --log-opt max-file=3`. */
export function logOptionsOf(opts: readonly string[] = []): LogOptions {
  let maxSize: number | undefined;
  let maxFile: number | undefined;
  for (const o of opts) {
    const [k, v = ""] = o.split("=", 2) as [string, string?];
    if (k === "max-size") maxSize = parseBytes("--log-opt max-size", v);
    else if (k === "max-file") maxFile = parsePositive("--log-opt max-file", v);
    else throw invalidArgument(`Unknown --log-opt "${k}": json-file takes max-size and max-file`);
  }
  return { maxSize, maxFile };
}

export function dockerRunCommand(program: Command): void {
  dockerCreateOptions(
    program.command("run").description("Create and run a container from an image (docker run)"),
  )
    .option("-d, --detach", "run in the background and print the container id")
    .option("--rm", "remove the container when it exits")
    .action(async (image: string, command: string[], f: DockerRunFlags, cmd: Command) => {
      exitWith(await dockerRun(image, command, f, globalsOf(cmd)));
    });
}

/**
 * `berth run`: creates the container (pulling a missing image), then starts it detached or runs it
 * attached; returns the exit status to leave with. docker_run_fast.ts calls it without commander.
 */
export async function dockerRun(
  image: string,
  command: string[],
  f: DockerRunFlags,
  g: GlobalOptions,
): Promise<number> {
  if (f.rm && f.restart && f.restart !== "no") {
    throw new Error("Flags --rm and --restart cannot be used together");
  }
  const paths = dockerPathsOf(g);
  const run = await runOptionsOf(image, command, f);
  // Detached, no client is left to remove it: the daemon does, once its task exits (Docker's AutoRemove).
  const opts = f.rm && f.detach ? { ...run, labels: { ...run.labels, [LABELS.autoRemove]: "true" } } : run;
  return await withClient(g, async (client) => {
    const host = realHost;
    const ctx = {
      client,
      paths,
      host,
      snapshotter: f.snapshotter,
      runtime: f.runtime,
      plainHttp: f.plainHttp,
      keys: f.key,
    };
    const made = await createDockerContainer(ctx, opts, logOptionsOf(f.logOpt));
    const { container } = await client.containers.get({ id: made.id });
    if (f.detach) {
      try {
        await startContainer(client, container!);
      } catch (err) {
        await removeContainer(client, paths, host, container!, { force: true, volumes: true });
        throw err;
      }
      console.log(made.id);
      return 0;
    }
    let status: number;
    try {
      status = await runTask(client, made.id, { terminal: !!f.tty, detach: false });
    } catch (err) {
      await removeContainer(client, paths, host, container!, { force: true, volumes: true });
      throw err;
    }
    if (f.rm) await removeContainer(client, paths, host, container!, { force: true, volumes: true });
    return status;
  });
}

export function dockerCreateCommand(program: Command): void {
  dockerCreateOptions(program.command("create").description("Create a container without starting it"))
    .action(async (image: string, command: string[], f: DockerRunFlags, cmd: Command) => {
      const paths = dockerPaths(cmd);
      const opts = await runOptionsOf(image, command, f);
      await withClient(cmd, async (client) => {
        const ctx = {
          client,
          paths,
          snapshotter: f.snapshotter,
          runtime: f.runtime,
          plainHttp: f.plainHttp,
          keys: f.key,
        };
        const made = await createDockerContainer(ctx, opts, logOptionsOf(f.logOpt));
        console.log(made.id);
      });
    });
}
