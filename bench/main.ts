/**
 * `deno task bench`: Berth side by side with containerd, one table of ratios.
 *
 *   deno run -A bench/main.ts [--runs N] [--quick] [--full] [--groups daemon,pull,run,memory,cri,docker]
 *                             [--berth-main PATH | --berth-bin PATH] [--no-write]
 *
 * Figure groups live one per file (daemon_group.ts, pull_group.ts, …); add a new one to groups().
 * Berth runs from the esbuild bundle dist/bundle/main.js by default, rebuilt first when its sources are newer.
 */

import { Command, InvalidArgumentError } from "commander";
import { ensureBundle } from "./bundle.ts";
import { criGroup } from "./cri_group.ts";
import { daemonGroup } from "./daemon_group.ts";
import { dockerGroup } from "./docker_group.ts";
import { memoryGroup } from "./memory_group.ts";
import { pullGroup } from "./pull_group.ts";
import { runGroup as runFiguresGroup } from "./run_group.ts";
import {
  describeMachine,
  markdown,
  mergeResults,
  missingReasons,
  type ResultsFile,
  rows,
  textTable,
} from "./report.ts";
import { type FigureGroup, type GroupResult, runGroup } from "./runner.ts";
import { berthTarget, containerdTarget, NAMESPACE, removeCgroups, stopAll, type Target } from "./targets.ts";

function groups(full: boolean): FigureGroup[] {
  return [
    daemonGroup,
    pullGroup(),
    runFiguresGroup(),
    memoryGroup({ counts: full ? [1, 10, 50, 100] : [1, 10, 25] }),
    criGroup({ podCounts: [10, 30] }),
    dockerGroup({ containers: 20 }),
  ];
}
const GROUP_IDS = groups(false).map((g) => g.id);

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

async function berthVersion(target: { binary?: string; main: string }): Promise<string> {
  const cmd = target.binary
    ? new Deno.Command(target.binary, { args: ["--version"], stdout: "piped", stderr: "null" })
    : new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", target.main, "--version"],
      stdout: "piped",
      stderr: "null",
    });
  try {
    const out = await cmd.output();
    const text = new TextDecoder().decode(out.stdout).trim().split("\n")[0] ?? "";
    return out.success && text ? text : "unavailable";
  } catch {
    return "unavailable";
  }
}

async function main(argv: string[]): Promise<number> {
  const program = new Command("bench")
    .description("Benchmark Berth side by side with containerd")
    .option("--runs <n>", "measured runs per target in every group (default: each group's own)", positiveInt)
    .option("--quick", "fewer runs and calls (a smoke test of the harness)", false)
    .option("--full", "measure memory with 1, 10, 50 and 100 containers (default 1, 10, 25)", false)
    .option("--groups <ids>", `figure groups to run (${GROUP_IDS.join(",")})`)
    .option("--berth-bin <path>", "a compiled berth binary instead of deno run dist/bundle/main.js")
    .option("--berth-main <path>", "the module deno runs for Berth (default: the bundle dist/bundle/main.js)")
    .option("--no-write", "print the table only; leave results.json and RESULTS.md alone")
    .exitOverride();
  program.parse(argv, { from: "user" });
  const opts = program.opts<
    {
      runs?: number;
      quick: boolean;
      full: boolean;
      groups?: string;
      berthBin?: string;
      berthMain?: string;
      write: boolean;
    }
  >();
  const all = groups(opts.full);
  const wanted = opts.groups?.split(",").map((s) => s.trim()) ?? GROUP_IDS;
  const unknown = wanted.filter((id) => !GROUP_IDS.includes(id));
  if (unknown.length > 0) throw new Error(`Unknown figure group ${unknown.join(", ")}`);

  const benchDir = new URL(".", import.meta.url).pathname;
  const berthMain = opts.berthMain ??
    (opts.berthBin
      ? new URL("../main.ts", import.meta.url).pathname
      : await ensureBundle((l) => console.error(l)));
  // containerd first in each run: A B A B, the order issue 6 asks for.
  const targets: Target[] = [containerdTarget(), berthTarget({ main: berthMain, binary: opts.berthBin })];

  const abort = new AbortController();
  const onSignal = () => abort.abort(new Error("Benchmark interrupted"));
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const t0 = performance.now();
  const results: GroupResult[] = [];
  try {
    for (const g of all.filter((g) => wanted.includes(g.id))) {
      results.push(
        await runGroup(g, targets, {
          runs: opts.runs,
          quick: opts.quick,
          signal: abort.signal,
          log: (l) => console.error(l),
        }),
      );
    }
  } finally {
    await stopAll();
    await removeCgroups(NAMESPACE).catch(() => {});
    await Promise.allSettled(targets.map((t) => t.dispose()));
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }

  const machine = await describeMachine(await berthVersion({ binary: opts.berthBin, main: berthMain }));
  const file: ResultsFile = {
    machine,
    ...(opts.runs !== undefined ? { runs: opts.runs } : {}),
    quick: opts.quick,
    command: ["deno task bench", ...argv].join(" "),
    groups: results,
    rows: rows(results),
  };
  console.log("");
  console.log(textTable(results));
  for (const line of missingReasons(results)) console.log(`\n${line}`);
  console.log(`\nDone in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  if (opts.write) {
    // A run of some groups keeps the other groups' figures from the last results.json.
    const earlier = await Deno.readTextFile(`${benchDir}results.json`)
      .then((t) => JSON.parse(t) as ResultsFile, () => undefined);
    const merged = mergeResults(earlier, file, GROUP_IDS);
    await Deno.writeTextFile(`${benchDir}results.json`, JSON.stringify(merged, null, 2) + "\n");
    await Deno.writeTextFile(`${benchDir}RESULTS.md`, markdown(merged));
    // Generated files are committed, so they must already pass `deno fmt --check`.
    await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "--quiet", `${benchDir}results.json`, `${benchDir}RESULTS.md`],
      stdout: "null",
    }).output();
    console.log(`Wrote ${benchDir}results.json and ${benchDir}RESULTS.md`);
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message?: string };
    if (typeof e.code === "string" && e.code.startsWith("commander.")) Deno.exit(e.exitCode ?? 2);
    console.error(`bench: ${e.message ?? String(err)}`);
    Deno.exit(1);
  }
}
