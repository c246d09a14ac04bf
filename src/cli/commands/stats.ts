/**
 * `berth stats` as docker's: CPU, memory, network, block I/O and pids of containers from Tasks.Metrics,
 * CPU % over the second between two samples; redrawn every second until Ctrl-C unless --no-stream.
 */
import type { Command } from "commander";
import type { BerthClient } from "../../client/mod.ts";
import type { Container } from "../../gen/services/containers/v1/containers_pb.ts";
import { listContainers, nameOf, resolveContainer } from "../../docker/names.ts";
import {
  cpuPercent,
  decodeMetrics,
  hostMemory,
  netIO,
  sampleOf,
  STATS_COLUMNS,
  type StatsRow,
  statsRow,
  type StatsSample,
} from "../../docker/stats.ts";
import { containerStates } from "../../docker/status.ts";
import { renderTemplate } from "../../docker/template.ts";
import { withClient } from "../context.ts";
import { formatTable } from "../table.ts";
import { describeError } from "../docker/each.ts";
import { exitWith } from "../task_io.ts";

interface StatsFlags {
  /** False with --no-stream. */
  stream?: boolean;
  all?: boolean;
  format?: string;
  trunc?: boolean;
}

const INTERVAL_MS = 1000;

interface Snapshot {
  readonly at: number;
  /** Samples of the containers with a live task, by id; their task's pid. */
  readonly samples: Map<string, { sample: StatsSample; pid: number }>;
}

/** One metrics sample of every container in `containers` that has a running task. */
async function snapshot(client: BerthClient, containers: readonly Container[]): Promise<Snapshot> {
  const states = await containerStates(client, containers);
  const live = containers.filter((c) => states.get(c.id)?.running);
  const samples = new Map<string, { sample: StatsSample; pid: number }>();
  if (live.length > 0) {
    const { metrics } = await client.tasks.metrics({ filters: live.map((c) => `id==${c.id}`) });
    for (const m of metrics) {
      if (!m.data) continue;
      const sample = sampleOf(decodeMetrics(m.data.typeUrl, m.data.value));
      samples.set(m.id, { sample, pid: states.get(m.id)?.pid ?? 0 });
    }
  }
  return { at: performance.now(), samples };
}

function rows(
  containers: readonly Container[],
  before: Snapshot,
  after: Snapshot,
  memory: number,
): StatsRow[] {
  const wallNs = (after.at - before.at) * 1e6;
  return containers.map((c) => {
    const now = after.samples.get(c.id);
    return statsRow({
      id: c.id,
      name: nameOf(c),
      sample: now?.sample,
      cpuPercent: now ? cpuPercent(before.samples.get(c.id)?.sample, now.sample, wallNs) : 0,
      net: now ? netIO(now.pid) : undefined,
      hostMemory: memory,
    });
  });
}

function render(list: readonly StatsRow[], opts: StatsFlags): string {
  const shown = opts.trunc === false ? list : list.map((r) => ({ ...r, ID: r.ID.slice(0, 12) }));
  const format = opts.format ?? "table";
  if (format === "table") {
    return formatTable([
      STATS_COLUMNS.map(([h]) => h),
      ...shown.map((r) => STATS_COLUMNS.map(([, k]) => r[k])),
    ], 3);
  }
  if (format === "json" || format === "{{json .}}") {
    return shown.map((r) => `${JSON.stringify(r)}\n`).join("");
  }
  return shown.map((r) => `${renderTemplate(format, r)}\n`).join("");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const write = (text: string) => Deno.stdout.writeSync(new TextEncoder().encode(text));

export function statsCommand(program: Command): void {
  program.command("stats").description("Display a live stream of container(s) resource usage statistics")
    .argument("[container...]")
    .option("-a, --all", "show all containers (default: running ones)")
    .option("--no-stream", "print the first result only")
    .option("--format <format>", '"table", "json" or a Go template such as {{.CPUPerc}}')
    .option("--no-trunc", "do not truncate output")
    .action(async (refs: string[], opts: StatsFlags, cmd: Command) => {
      const memory = hostMemory();
      let failed = false;
      await withClient(cmd, async (client) => {
        const pick = async (): Promise<Container[]> => {
          if (refs.length === 0) {
            const all = await listContainers(client);
            if (opts.all) return all;
            const states = await containerStates(client, all);
            return all.filter((c) => states.get(c.id)?.running);
          }
          const found: Container[] = [];
          for (const ref of refs) {
            try {
              found.push(await resolveContainer(client, ref));
            } catch (err) {
              console.error(`berth: ${describeError(err)}`);
              failed = true;
            }
          }
          return found;
        };
        let containers = await pick();
        if (failed) return;
        let before = await snapshot(client, containers);
        for (;;) {
          await sleep(INTERVAL_MS);
          const after = await snapshot(client, containers);
          const text = render(rows(containers, before, after, memory), opts);
          if (opts.stream === false) {
            write(text);
            return;
          }
          // Docker's redraw: clear the screen, cursor home, the table.
          write(`\x1b[2J\x1b[H${text}`);
          if (refs.length === 0) {
            // As docker: containers that started meanwhile join, those that stopped leave.
            containers = await pick();
            before = await snapshot(client, containers);
          } else before = after;
        }
      });
      if (failed) exitWith(1);
    });
}
