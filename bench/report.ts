/** The machine the figures came from, and the figures as a terminal table, Markdown and JSON. */

import type { GroupResult } from "./runner.ts";
import { formatFigure, ratio, ratioBounds, type Summary } from "./stats.ts";
import type { TargetId } from "./targets.ts";

export interface Machine {
  readonly date: string;
  readonly cpu: string;
  readonly nproc: number;
  readonly memoryMiB: number;
  readonly kernel: string;
  readonly versions: Record<string, string>;
}

async function firstLine(program: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" }).output();
    const text = new TextDecoder().decode(out.success ? out.stdout : out.stderr).trim();
    return text.split("\n")[0] ?? "";
  } catch {
    return "not installed";
  }
}

export async function describeMachine(berthVersion: string): Promise<Machine> {
  const meminfo = await Deno.readTextFile("/proc/meminfo");
  const memKiB = Number(/^MemTotal:\s+(\d+) kB$/m.exec(meminfo)?.[1] ?? 0);
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  return {
    date: new Date().toISOString(),
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    nproc: navigator.hardwareConcurrency,
    memoryMiB: Math.round(memKiB / 1024),
    kernel: Deno.osRelease(),
    versions: {
      deno: Deno.version.deno,
      containerd: await firstLine("containerd", ["--version"]),
      ctr: await firstLine("ctr", ["--version"]),
      runc: await firstLine("runc", ["--version"]),
      berth: berthVersion,
    },
  };
}

export interface Row {
  readonly group: string;
  readonly id: string;
  readonly label: string;
  readonly unit: string;
  readonly containerd?: Summary;
  readonly berth?: Summary;
  readonly ratio?: number;
  readonly ratioBounds?: [number, number];
  /** The ratio the figure is meant to stay at or under, and whether this run's ratio did. */
  readonly goal?: number;
  readonly goalMet?: boolean;
  /** For a reference figure (no daemon: a floor or a ceiling), its summary; no targets, no ratio. */
  readonly reference?: Summary;
}

function groupRows(g: GroupResult): Row[] {
  return g.figures.map((f) => {
    const c = f.summaries.containerd;
    const b = f.summaries.berth;
    const q = ratio(c?.median, b?.median);
    return {
      group: g.id,
      id: f.id,
      label: f.label,
      unit: f.unit,
      containerd: c,
      berth: b,
      ratio: q,
      ratioBounds: c && b ? ratioBounds(c, b) : undefined,
      ...(f.goal !== undefined ? { goal: f.goal, ...(q !== undefined ? { goalMet: q <= f.goal } : {}) } : {}),
    };
  });
}

function referenceRows(g: GroupResult): Row[] {
  return (g.references ?? []).map((f) => ({
    group: g.id,
    id: f.id,
    label: f.label,
    unit: f.unit,
    ...(f.summary ? { reference: f.summary } : {}),
  }));
}

export function rows(groups: readonly GroupResult[]): Row[] {
  return groups.flatMap((g) => [...groupRows(g), ...referenceRows(g)]);
}

function cell(s: Summary | undefined, unit: string, missing: string): [string, string] {
  if (!s) return [missing, "—"];
  return [`${formatFigure(s.median)} ${unit}`, `${formatFigure(s.min)}–${formatFigure(s.max)}`];
}

function missingText(g: GroupResult, target: TargetId): string {
  return g.outcomes[target]?.available === false ? "unavailable" : "—";
}

const HEADER = [
  "figure",
  "containerd median",
  "berth median",
  "berth/containerd",
  "containerd min–max",
  "berth min–max",
];

const REF_HEADER = ["reference (no daemon)", "median", "min–max"];

function tableCells(g: GroupResult): string[][] {
  return groupRows(g).map((r) => {
    const [cm, cr] = cell(r.containerd, r.unit, missingText(g, "containerd"));
    const [bm, br] = cell(r.berth, r.unit, missingText(g, "berth"));
    return [r.label, cm, bm, ratioCell(r.ratio, r.goal), cr, br];
  });
}

/** The ratio as printed, with the goal beside it when the figure has one: `0.62× (goal ≤ 0.70×: met)`. */
export function ratioCell(ratio: number | undefined, goal: number | undefined): string {
  const q = ratio === undefined ? "—" : `${ratio.toFixed(2)}×`;
  if (goal === undefined) return q;
  const verdict = ratio === undefined ? "" : `: ${ratio <= goal ? "met" : "missed"}`;
  return `${q} (goal ≤ ${goal.toFixed(2)}×${verdict})`;
}

function referenceCells(g: GroupResult): string[][] {
  return referenceRows(g).map((r) => {
    const [m, range] = cell(r.reference, r.unit, g.referenceFailure ? "failed" : "—");
    return [r.label, m, range];
  });
}

function fixedWidth(header: string[], body: string[][]): string[] {
  const all = [header, ...body];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)];
}

/** Fixed-width tables for the terminal: one per group, its reference figures below it. */
export function textTable(groups: readonly GroupResult[]): string {
  const out: string[] = [];
  for (const g of groups) {
    if (out.length > 0) out.push("");
    out.push(`${g.title}${g.runs !== undefined ? ` (${g.runs} runs)` : ""}`);
    out.push(...fixedWidth(HEADER, tableCells(g)));
    const refs = referenceCells(g);
    if (refs.length > 0) out.push("", ...fixedWidth(REF_HEADER, refs));
  }
  return out.join("\n");
}

/** One line per target that has no figures in a group, with the reason. */
export function missingReasons(groups: readonly GroupResult[]): string[] {
  const out: string[] = [];
  for (const g of groups) {
    for (const [target, o] of Object.entries(g.outcomes)) {
      if (!o.available) out.push(`${target} in "${g.id}": ${o.reason}`);
    }
    if (g.referenceFailure) out.push(`reference figures in "${g.id}": ${g.referenceFailure}`);
  }
  return out;
}

/** Groups measured later than the rest of a results file, by another command (`--groups …`). */
export interface ResultsUpdate {
  readonly command: string;
  readonly date: string;
  readonly quick: boolean;
  readonly groups: readonly string[];
}

export interface ResultsFile {
  readonly machine: Machine;
  /** The --runs given, or undefined when each group used its default (see each group's runs). */
  readonly runs?: number;
  readonly quick: boolean;
  readonly command: string;
  readonly groups: readonly GroupResult[];
  readonly rows: Row[];
  /** Groups that were measured again after the file's command, newest last. */
  readonly updates?: readonly ResultsUpdate[];
}

/**
 * `fresh` laid over `earlier`: the groups fresh ran replace theirs, the others are kept, all in `order`
 * (the groups' registration order). A run of every group earlier had replaces the file outright; otherwise
 * the file keeps earlier's command and machine and records fresh as an update.
 */
export function mergeResults(
  earlier: ResultsFile | undefined,
  fresh: ResultsFile,
  order: readonly string[],
): ResultsFile {
  const ran = fresh.groups.map((g) => g.id);
  if (!earlier || earlier.groups.every((g) => ran.includes(g.id))) return fresh;
  const byId = new Map([...earlier.groups, ...fresh.groups].map((g) => [g.id, g]));
  const ids = [...order, ...byId.keys()].filter((id, i, all) => byId.has(id) && all.indexOf(id) === i);
  const groups = ids.map((id) => byId.get(id)!);
  const older = (earlier.updates ?? [])
    .map((u) => ({ ...u, groups: u.groups.filter((id) => !ran.includes(id)) }))
    .filter((u) => u.groups.length > 0);
  const update = { command: fresh.command, date: fresh.machine.date, quick: fresh.quick, groups: ran };
  // Each group carries its own runs: one --runs for the whole file would no longer be true.
  const { runs: _runs, ...base } = earlier;
  return { ...base, groups, rows: rows(groups), updates: [...older, update] };
}

const GENERAL_NOTES = [
  "Each daemon start gets a fresh temp root, state and socket (the daemon group's restart figure starts the " +
  "same daemon again on its root and state, as after a reboot). containerd runs Debian's build with its " +
  "default plugins (CRI included) and a config that only moves its paths into the temp dir. Berth runs " +
  "`deno run -A dist/bundle/main.js daemon` (the esbuild bundle, the program `deno task compile` embeds in " +
  "the release, which needs the denort runtime to build; `--berth-main main.ts` runs it from source, " +
  "`--berth-bin` a compiled binary) on a private copy of the deno executable, so its pages are not shared with the benchmark's " +
  "own deno process.",
  "Every group runs containerd then Berth, run after run (A B A B), so slow drift of the machine hits " +
  "both alike; other work on the machine still adds noise, which the min–max columns show.",
  "Ratios are Berth's median over containerd's: below 1 is better for times and memory, above 1 is " +
  "better for rates (MB/s, runs/s).",
];

export function markdown(results: ResultsFile): string {
  const m = results.machine;
  const esc = (s: string) => s.replaceAll("|", "\\|");
  const mdTable = (header: string[], body: string[][]) => [
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => i === 0 ? "---" : "---:").join("|")}|`,
    ...body.map((r) => `| ${r.map(esc).join(" | ")} |`),
  ];
  const md: string[] = [
    "# Berth benchmarks",
    "",
    `Generated by \`${results.command}\` on ${m.date} — regenerated on every run, do not edit.`,
    ...(results.updates ?? []).map((u) =>
      `Group${u.groups.length > 1 ? "s" : ""} ${u.groups.join(", ")} measured again by \`${u.command}\` on ` +
      `${u.date}${u.quick ? " (--quick)" : ""}.`
    ),
    "",
    "| machine | |",
    "|---|---|",
    `| CPU | ${esc(m.cpu)} |`,
    `| nproc | ${m.nproc} |`,
    `| memory | ${m.memoryMiB} MiB |`,
    `| kernel | ${esc(m.kernel)} |`,
    ...Object.entries(m.versions).map(([k, v]) => `| ${k} | ${esc(v)} |`),
    "",
    `Measured runs per target${results.quick ? " (--quick)" : ""}: ` +
    (results.runs !== undefined
      ? `${results.runs} in every group`
      : results.groups.map((g) => `${g.id} ${g.runs ?? "?"}`).join(", ")) +
    ". Each cell is the median over runs; min–max is the spread over runs.",
    "",
    ...GENERAL_NOTES.map((n) => `- ${n}`),
    "",
  ];
  for (const g of results.groups) {
    md.push(`## ${g.title}`, "", ...mdTable(HEADER, tableCells(g)), "");
    const refs = referenceCells(g);
    if (refs.length > 0) md.push(...mdTable(REF_HEADER, refs), "");
    if (g.notes && g.notes.length > 0) {
      md.push("How measured:", "", ...g.notes.map((n) => `- ${n}`), "");
    }
  }
  const why = missingReasons(results.groups);
  if (why.length > 0) {
    md.push("## Missing figures", "", ...why.map((w) => `- ${esc(w).split("\n")[0]}`), "");
  }
  return md.join("\n");
}
