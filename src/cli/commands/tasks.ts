/**
 * `berth tasks …` as ctr's: ls, start, attach, exec, kill, pause, resume, ps, metrics, rm (the task
 * plumbing they share with `run` is in ../task_io.ts).
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import { AnySchema, type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import type { BerthClient } from "../../client/mod.ts";
import * as oci from "../../oci/mod.ts";
import { ProcessDetailsSchema } from "../../gen/types/runc/options/oci_pb.ts";
import { Status } from "../../gen/types/task/task_pb.ts";
import { type CgroupMetrics, decodeMetrics } from "../../docker/stats.ts";
import { withClient } from "../context.ts";
import { goJson } from "../go_json.ts";
import * as v1 from "../../gen/cgroups/v1/metrics_pb.ts";
import * as v2 from "../../gen/cgroups/v2/metrics_pb.ts";
import { createFifoSet, type FifoSet, holdFifos } from "../host/stdio.ts";
import { parseSignal } from "../../base/signals.ts";
import { userDbOf } from "../host/mount.ts";
import { printTable } from "../table.ts";
import { attachLocal, deleteTask, exitWith, OUTPUT_DRAIN_MS, relay, runTask } from "../task_io.ts";
import { isCode } from "../../client/errors.ts";

const PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";

async function containerSpec(client: BerthClient, id: string): Promise<oci.Spec> {
  const { container } = await client.containers.get({ id });
  if (!container?.spec?.value.length) throw new Error(`Container "${id}" has no spec`);
  return oci.decodeSpec(container.spec.value);
}

const formatTime = (t: Timestamp | undefined) => (t ? timestampDate(t).toISOString() : "-");

/** A uint64 list as Go's %v prints it: `[1 2 3]`. */
const goList = (xs: readonly bigint[]) => `[${xs.join(" ")}]`;

function metricRows(decoded: CgroupMetrics): string[][] {
  const rows = [["METRIC", "VALUE"]];
  if (decoded.version === 1) {
    const m = decoded.metrics;
    if (m.memory) {
      rows.push(["memory.usage_in_bytes", String(m.memory.usage?.usage ?? 0n)]);
      rows.push(["memory.limit_in_bytes", String(m.memory.usage?.limit ?? 0n)]);
      rows.push(["memory.stat.cache", String(m.memory.totalCache)]);
    }
    if (m.cpu) {
      rows.push(["cpuacct.usage", String(m.cpu.usage?.total ?? 0n)]);
      rows.push(["cpuacct.usage_percpu", goList(m.cpu.usage?.perCpu ?? [])]);
    }
    if (m.pids) {
      rows.push(["pids.current", String(m.pids.current)], ["pids.limit", String(m.pids.limit)]);
    }
    return rows;
  }
  const m = decoded.metrics;
  if (m.pids) rows.push(["pids.current", String(m.pids.current)], ["pids.limit", String(m.pids.limit)]);
  if (m.cpu) {
    const c = m.cpu;
    rows.push(
      ["cpu.usage_usec", String(c.usageUsec)],
      ["cpu.user_usec", String(c.userUsec)],
      ["cpu.system_usec", String(c.systemUsec)],
      ["cpu.nr_periods", String(c.nrPeriods)],
      ["cpu.nr_throttled", String(c.nrThrottled)],
      ["cpu.throttled_usec", String(c.throttledUsec)],
    );
  }
  if (m.memory) {
    const x = m.memory;
    rows.push(
      ["memory.usage", String(x.usage)],
      ["memory.usage_limit", String(x.usageLimit)],
      ["memory.swap_usage", String(x.swapUsage)],
      ["memory.swap_limit", String(x.swapLimit)],
    );
  }
  return rows;
}

export function tasksCommand(program: Command): void {
  const tasks = program.command("tasks").alias("t").alias("task").description("Manage tasks")
    .enablePositionalOptions();

  tasks.command("list").alias("ls").description("List tasks")
    .option("-q, --quiet", "print only the task id")
    .action(async (opts: { quiet?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const { tasks: list } = await client.tasks.list({});
        if (opts.quiet) return list.forEach((t) => console.log(t.id));
        printTable([
          ["TASK", "PID", "STATUS"],
          ...list.map((t) => [t.id, String(t.pid), Status[t.status] ?? "UNKNOWN"]),
        ]);
      });
    });

  tasks.command("start").description("Start a container that has been created")
    .argument("<id>")
    .option("-d, --detach", "detach from the task after it has started execution")
    .option("--null-io", "send all IO to /dev/null")
    .option("--fifo-dir <dir>", "directory used for storing IO FIFOs")
    .action(
      async (id: string, opts: { detach?: boolean; nullIo?: boolean; fifoDir?: string }, cmd: Command) => {
        const code = await withClient(cmd, async (client) => {
          const spec = await containerSpec(client, id);
          return await runTask(client, id, {
            terminal: !!spec.process?.terminal,
            detach: !!opts.detach,
            nullIO: !!opts.nullIo,
            fifoDir: opts.fifoDir,
          });
        });
        exitWith(code);
      },
    );

  tasks.command("attach").description("Attach to the IO of a running container").argument("<id>")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const code = await withClient(cmd, async (client) => {
        const { process: p } = await client.tasks.get({ containerId: id });
        if (!p) throw new Error(`Task ${id} not found`);
        if (!p.stdout) throw new Error(`Cannot attach to task ${id}: it was started without stdio`);
        const fifos: FifoSet = {
          dir: "",
          stdin: p.stdin,
          stdout: p.stdout,
          stderr: p.stderr,
          terminal: p.terminal,
        };
        const waiting = client.tasks.wait({ containerId: id }, { timeoutMs: 0 });
        const local = attachLocal(client.tasks, fifos, id);
        const stop = relay(client.tasks, id, "", p.terminal);
        try {
          const res = await waiting;
          await local.io.wait(OUTPUT_DRAIN_MS);
          await deleteTask(client, id);
          return res.exitStatus;
        } finally {
          stop();
          local.detach();
        }
      });
      exitWith(code);
    });

  tasks.command("exec").description("Execute additional processes in an existing container")
    .argument("<id>").argument("<command...>")
    .requiredOption("--exec-id <id>", "exec specific id for the process")
    .option("--cwd <dir>", "working directory of the new process")
    .option("-t, --tty", "allocate a TTY for the process")
    .option("-d, --detach", "detach from the process after it has started execution")
    .option("--user <user>", "user id or name")
    .option("--fifo-dir <dir>", "directory used for storing IO FIFOs")
    .passThroughOptions()
    .action(async (id: string, args: string[], opts: ExecFlags, cmd: Command) => {
      exitWith(await withClient(cmd, (client) => execProcess(client, id, args, opts)));
    });

  tasks.command("kill").description("Signal a container (default: its stop signal, else SIGTERM)")
    .argument("<id>")
    .option("-s, --signal <signal>", "signal to send to the container")
    .option("--exec-id <id>", "process ID to kill")
    .option("-a, --all", "send signal to all processes inside the container")
    .action(async (id: string, opts: { signal?: string; execId?: string; all?: boolean }, cmd: Command) => {
      if (opts.all && opts.execId) throw new Error("Specify an exec-id or all; not both");
      await withClient(cmd, async (client) => {
        const { container } = await client.containers.get({ id });
        const name = opts.signal ?? container?.labels["io.containerd.image.config.stop-signal"] ?? "SIGTERM";
        await client.tasks.kill({
          containerId: id,
          execId: opts.execId ?? "",
          signal: parseSignal(name),
          all: !!opts.all,
        });
      });
    });

  for (const verb of ["pause", "resume"] as const) {
    tasks.command(verb).description(`${verb === "pause" ? "Pause" : "Resume"} an existing container`)
      .argument("<id>")
      .action(async (id: string, _opts: unknown, cmd: Command) => {
        await withClient(cmd, async (client) => {
          await client.tasks[verb]({ containerId: id });
        });
      });
  }

  tasks.command("ps").description("List processes for container").argument("<id>")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const { processes } = await client.tasks.listPids({ containerId: id });
        const info = (i: { typeUrl: string; value: Uint8Array } | undefined) => {
          if (!i) return "-";
          if (!i.typeUrl.endsWith("ProcessDetails")) return i.typeUrl;
          return `&ProcessDetails{ExecID:${fromBinary(ProcessDetailsSchema, i.value).execId},}`;
        };
        printTable([["PID", "INFO"], ...processes.map((p) => [String(p.pid), info(p.info)])]);
      });
    });

  tasks.command("metrics").alias("metric")
    .description("Get a single data point of metrics for a task")
    .argument("<id>")
    .option("--format <format>", '"table" or "json"', "table")
    .action(async (id: string, opts: { format: string }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        await client.containers.get({ id });
        const { metrics } = await client.tasks.metrics({ filters: [`id==${id}`] });
        const m = metrics[0];
        if (!m?.data) throw new Error(`Task ${id} not found`);
        // Decoded before anything is printed: ctr too fails on a payload that is not cgroup metrics.
        const decoded = decodeMetrics(m.data.typeUrl, m.data.value);
        if (opts.format === "json") {
          // ctr prints the Go struct with encoding/json: the same bytes here.
          const schema = decoded.version === 1 ? v1.MetricsSchema : v2.MetricsSchema;
          return console.log(goJson(schema, decoded.metrics));
        }
        if (opts.format !== "table") throw new Error(`Invalid format "${opts.format}": use table or json`);
        printTable([["ID", "TIMESTAMP"], [m.id, formatTime(m.timestamp)]]);
        console.log();
        printTable(metricRows(decoded));
      });
    });

  tasks.command("delete").alias("rm").alias("del").alias("remove").description("Delete one or more tasks")
    .argument("<ids...>")
    .option("-f, --force", "force delete task process")
    .option("--exec-id <id>", "process ID to delete")
    .action(async (ids: string[], opts: { force?: boolean; execId?: string }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        let first: unknown;
        for (const id of opts.execId ? ids.slice(0, 1) : ids) {
          try {
            const status = await deleteTask(client, id, opts);
            if (opts.execId && status !== 0) exitWith(status);
          } catch (err) {
            if (opts.execId) throw err;
            console.error(`berth: Cannot delete task ${id}: ${describe(err)}`);
            first ??= err;
          }
        }
        if (first) throw new Error(`${ids.length > 1 ? "Some tasks were" : "The task was"} not deleted`);
      });
    });
}

const describe = (err: unknown) =>
  err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err);

export interface ExecFlags {
  execId: string;
  /** K=V added to the container's environment (a later one wins). */
  env?: string[];
  cwd?: string;
  tty?: boolean;
  detach?: boolean;
  user?: string;
  fifoDir?: string;
}

/** ctr's tasks exec: the container's process spec with new args, terminal, cwd and user. */
export async function execProcess(
  client: BerthClient,
  id: string,
  args: string[],
  opts: ExecFlags,
): Promise<number> {
  const { container } = await client.containers.get({ id });
  if (!container?.spec?.value.length) throw new Error(`Container "${id}" has no spec`);
  const spec = oci.decodeSpec(container.spec.value);
  if (opts.user) {
    const { mounts } = await client.snapshots.mounts({
      snapshotter: container.snapshotter,
      key: container.snapshotKey,
    });
    await oci.applyOpts(spec, {
      namespace: "",
      id,
      userDb: () => userDbOf(mounts),
    }, [oci.withUser(opts.user)]);
  }
  const process = { ...spec.process!, terminal: !!opts.tty, args };
  if (opts.cwd) process.cwd = opts.cwd;
  if (opts.env?.length) process.env = oci.mergeEnv(process.env ?? [], opts.env);
  const execId = opts.execId;
  const fifos = await createFifoSet(execId, { terminal: !!opts.tty, root: opts.fifoDir });
  const local = opts.detach ? undefined : attachLocal(client.tasks, fifos, id, execId);
  const release = opts.detach ? holdFifos([fifos.stdout, fifos.stderr]) : () => {};
  const cleanup = async () => {
    local?.detach();
    release();
    await Deno.remove(fifos.dir, { recursive: true }).catch(() => {});
  };
  try {
    await client.tasks.exec({
      containerId: id,
      execId,
      stdin: fifos.stdin,
      stdout: fifos.stdout,
      stderr: fifos.stderr,
      terminal: !!opts.tty,
      spec: create(AnySchema, {
        typeUrl: PROCESS_TYPE_URL,
        value: new TextEncoder().encode(JSON.stringify(process)),
      }),
    });
  } catch (err) {
    await cleanup();
    throw err;
  }
  const waiting = opts.detach ? undefined : client.tasks.wait({ containerId: id, execId }, { timeoutMs: 0 });
  waiting?.catch(() => {});
  try {
    await client.tasks.start({ containerId: id, execId });
  } catch (err) {
    await client.tasks.deleteProcess({ containerId: id, execId }).catch(() => {});
    await cleanup();
    throw err;
  }
  if (opts.detach) {
    release();
    return 0;
  }
  const stop = relay(client.tasks, id, execId, !!opts.tty);
  try {
    const res = await waiting!;
    await local?.io.wait(OUTPUT_DRAIN_MS);
    await client.tasks.deleteProcess({ containerId: id, execId }).catch((err) => {
      if (!isCode(err, Code.NotFound)) throw err;
    });
    return res.exitStatus;
  } finally {
    stop();
    await cleanup();
  }
}
