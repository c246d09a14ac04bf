/**
 * Docker's lifecycle verbs over containers named by name or id: start, stop, restart, kill, rm, logs and
 * exec. Several containers may be given where docker takes several; one that fails is reported and the
 * rest still done, the exit status 1 at the end.
 */
import type { Command } from "commander";
import type { BerthClient } from "../../client/mod.ts";
import type { Container } from "../../gen/services/containers/v1/containers_pb.ts";
import { Status } from "../../gen/types/task/task_pb.ts";
import { logPathOf, readJsonLog } from "../../docker/logs.ts";
import { nameOf, resolveContainer } from "../../docker/names.ts";
import {
  dockerPathsOf,
  type GlobalOptions,
  globalsOf,
  parseDuration,
  repeatable,
  withClient,
} from "../context.ts";
import { exitWith } from "../task_io.ts";
import { forEachContainer } from "../docker/each.ts";
import { realHost } from "../docker/host_real.ts";
import {
  killContainer,
  removeContainer,
  startContainer,
  stopContainer,
  taskStatus,
} from "../docker/lifecycle.ts";
import { execProcess } from "./tasks.ts";

/** Wraps a verb's action so that, as docker does, each container's ref is printed once it succeeded. */
function echoing(fn: (client: BerthClient, c: Container) => Promise<unknown>) {
  return async (client: BerthClient, c: Container, ref: string): Promise<void> => {
    await fn(client, c);
    console.log(ref);
  };
}

interface RmFlags {
  force?: boolean;
  volumes?: boolean;
}

/** `berth rm`: each container (killed first with `force`) and its network, logs and anonymous volumes. */
export async function removeContainers(globals: GlobalOptions, refs: readonly string[], o: RmFlags) {
  const paths = dockerPathsOf(globals);
  const host = realHost;
  await forEachContainer(globals, refs, echoing((client, c) => removeContainer(client, paths, host, c, o)));
}

/** Each verb's adder, by name (src/cli/verbs.ts loads them one by one). */
export const LIFECYCLE_VERBS: Readonly<Record<string, (program: Command) => void>> = {
  start: (program) => {
    program.command("start").description("Start one or more stopped containers")
      .argument("<container...>")
      .action((refs: string[], _o: unknown, cmd: Command) =>
        forEachContainer(cmd, refs, echoing((client, c) => startContainer(client, c)))
      );
  },
  stop: (program) => {
    program.command("stop").description("Stop one or more running containers (stop signal, then SIGKILL)")
      .option("-t, --time <seconds>", "seconds to wait before killing", "10")
      .argument("<container...>")
      .action((refs: string[], o: { time: string }, cmd: Command) =>
        forEachContainer(cmd, refs, echoing((client, c) => stopContainer(client, c, Number(o.time))))
      );
  },
  restart: (program) => {
    program.command("restart").description("Restart one or more containers")
      .option("-t, --time <seconds>", "seconds to wait before killing", "10")
      .argument("<container...>")
      .action((refs: string[], o: { time: string }, cmd: Command) =>
        forEachContainer(
          cmd,
          refs,
          echoing(async (client, c) => {
            await stopContainer(client, c, Number(o.time));
            const { container } = await client.containers.get({ id: c.id });
            await startContainer(client, container!);
          }),
        )
      );
  },
  kill: (program) => {
    program.command("kill").description("Send a signal (default SIGKILL) to one or more running containers")
      .option("-s, --signal <signal>", "signal to send", "SIGKILL")
      .argument("<container...>")
      .action((refs: string[], o: { signal: string }, cmd: Command) =>
        forEachContainer(cmd, refs, echoing((client, c) => killContainer(client, c, o.signal)))
      );
  },
  rm: (program) => {
    program.command("rm").description("Remove one or more containers")
      .option("-f, --force", "kill and remove a running container")
      .option("-v, --volumes", "remove the container's anonymous volumes")
      .argument("<container...>")
      .action((refs: string[], o: RmFlags, cmd: Command) => removeContainers(globalsOf(cmd), refs, o));
  },
  logs: (program) => {
    program.command("logs").description("Show a container's output (from its json-file log)")
      .option("-f, --follow", "keep printing new output until the container stops")
      .option("--since <time>", "only output since this time (RFC 3339) or duration ago (10m)")
      .option("--until <time>", "only output before this time or duration ago")
      .option("-n, --tail <n>", "only the last N lines", "all")
      .option("-t, --timestamps", "show timestamps")
      .argument("<container>")
      .action(async (ref: string, o: LogsFlags, cmd: Command) => {
        await withClient(cmd, (client) => printLogs(client, ref, o));
      });
  },
  exec: (program) => {
    program.command("exec").description("Run a command in a running container")
      .option("-i, --interactive", "keep STDIN open")
      .option("-t, --tty", "allocate a pseudo-TTY")
      .option("-d, --detach", "run the command in the background")
      .option("-e, --env <K=V>", "set an environment variable", repeatable)
      .option("-w, --workdir <dir>", "working directory inside the container")
      .option("-u, --user <user[:group]>", "user name or uid (and group)")
      .argument("<container>")
      .argument("<command...>")
      .passThroughOptions()
      .action(async (ref: string, args: string[], o: ExecFlags, cmd: Command) => {
        const code = await withClient(cmd, async (client) => {
          const c = await resolveContainer(client, ref);
          const task = await taskStatus(client, c.id);
          if (task?.status !== Status.RUNNING) throw new Error(`Container ${nameOf(c)} is not running`);
          const execId = `exec-${crypto.randomUUID().slice(0, 8)}`;
          return await execProcess(client, c.id, args, {
            execId,
            tty: o.tty,
            detach: o.detach,
            user: o.user,
            cwd: o.workdir,
            env: o.env,
          });
        });
        exitWith(code);
      });
  },
};

interface ExecFlags {
  interactive?: boolean;
  tty?: boolean;
  detach?: boolean;
  env?: string[];
  workdir?: string;
  user?: string;
}

interface LogsFlags {
  follow?: boolean;
  since?: string;
  until?: string;
  tail: string;
  timestamps?: boolean;
}

/** An RFC 3339 time, or a duration before now ("10m", "1h30m"). */
function timeArg(flag: string, text: string): Date {
  if (/^\d/.test(text) && !/^\d+(\.\d+)?[a-zµ]*$/.test(text)) {
    const d = new Date(text);
    if (Number.isNaN(d.getTime())) throw new Error(`Invalid ${flag} "${text}": use RFC 3339 or a duration`);
    return d;
  }
  return new Date(Date.now() - parseDuration(text));
}

async function printLogs(client: BerthClient, ref: string, o: LogsFlags): Promise<void> {
  const c = await resolveContainer(client, ref);
  const path = logPathOf(c);
  if (!path) throw new Error(`Container ${nameOf(c)} has no json-file log (it was not made by berth run -d)`);
  const tail = o.tail === "all" ? undefined : Number(o.tail);
  if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) {
    throw new Error(`Invalid --tail "${o.tail}"`);
  }
  const ctl = new AbortController();
  const enc = new TextEncoder();
  let watcher: Promise<void> | undefined;
  if (o.follow) {
    // Follow until the task is gone or stopped; a daemon that is down (restarting) does not end it.
    watcher = (async () => {
      while (!ctl.signal.aborted) {
        await new Promise((r) => setTimeout(r, 500));
        try {
          const t = await taskStatus(client, c.id);
          if (!t || t.status === Status.STOPPED) {
            await new Promise((r) => setTimeout(r, 300)); // the last lines
            ctl.abort();
          }
        } catch { /* daemon unreachable for now: keep following */ }
      }
    })();
  }
  try {
    for await (
      const e of readJsonLog(path, {
        tail,
        since: o.since ? timeArg("--since", o.since) : undefined,
        until: o.until ? timeArg("--until", o.until) : undefined,
        follow: !!o.follow,
        signal: ctl.signal,
      })
    ) {
      const text = o.timestamps ? `${e.time} ${e.log}` : e.log;
      (e.stream === "stderr" ? Deno.stderr : Deno.stdout).writeSync(enc.encode(text));
    }
  } finally {
    ctl.abort();
    await watcher;
  }
}
