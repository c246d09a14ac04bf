/**
 * The shared runner. A figure group (one file per group: daemon, pull, run, memory …) knows how to
 * take one sample of each of its figures from one target; the runner warms each target up once,
 * then alternates targets run by run (A B A B …) so slow drift of the machine hits both alike.
 * A group may also have reference figures that need no daemon (the floor `runc run`, the ceiling of
 * a raw fetch): they are taken once per run, after both targets, so they drift with them.
 */

import { summarize, type Summary } from "./stats.ts";
import type { Target, TargetId } from "./targets.ts";

export type Unit = "ms" | "MiB" | "MB/s" | "runs/s" | "×";

export interface FigureSpec {
  /** Stable key in results.json, e.g. "start_grpc_ms". */
  readonly id: string;
  /** Row label in the table. */
  readonly label: string;
  readonly unit: Unit;
  /**
   * The berth/containerd ratio of medians this figure is meant to stay at or under (a goal from the
   * issue that asked for the figure, printed beside the ratio); only for figures where lower is better.
   */
  readonly goal?: number;
  /**
   * Only these targets measure it (a figure of one runtime alone); the others leave it out and show
   * "—". Every target measures it when absent.
   */
  readonly only?: readonly TargetId[];
}

export interface SampleContext {
  readonly signal: AbortSignal;
  readonly quick: boolean;
  /** 0 for the unmeasured warm-up, then 1..runs. */
  readonly run: number;
}

export interface SetupContext {
  readonly signal: AbortSignal;
  readonly quick: boolean;
  readonly log: (line: string) => void;
}

export interface FigureGroup {
  readonly id: string;
  readonly title: string;
  readonly figures: readonly FigureSpec[];
  /** Figures of the machine alone (no daemon), taken by reference() once per run. */
  readonly references?: readonly FigureSpec[];
  /** Measured runs when the command line does not say (slow groups take fewer). */
  readonly defaultRuns?: { readonly full: number; readonly quick: number };
  /** Whether each target gets an unmeasured warm-up sample first; default true. */
  readonly warmup?: boolean;
  /** How the figures are taken, one Markdown bullet each, for RESULTS.md. */
  readonly notes?: readonly string[];
  /** Prepares what every sample shares (a registry, images); teardown() is always called after. */
  setup?(ctx: SetupContext): Promise<void>;
  teardown?(): Promise<void>;
  /** One value per figure id, for one target. Must clean up everything it started, also on failure. */
  sample(target: Target, ctx: SampleContext): Promise<Record<string, number>>;
  /** One value per reference figure id. */
  reference?(ctx: SampleContext): Promise<Record<string, number>>;
}

export interface FigureResult extends FigureSpec {
  readonly group: string;
  readonly summaries: Partial<Record<TargetId, Summary>>;
  readonly samples: Partial<Record<TargetId, number[]>>;
}

export interface ReferenceResult extends FigureSpec {
  readonly group: string;
  readonly summary?: Summary;
  readonly samples: number[];
}

export interface GroupResult {
  readonly id: string;
  readonly title: string;
  /** Measured runs per target. */
  readonly runs?: number;
  readonly notes?: readonly string[];
  readonly figures: FigureResult[];
  readonly references?: ReferenceResult[];
  readonly outcomes: Record<TargetId, { available: boolean; reason?: string }>;
  /** Why the reference figures are missing, when they are. */
  readonly referenceFailure?: string;
}

export interface RunOptions {
  /** Measured runs; the group's defaultRuns (else 10, 3 quick) when undefined. */
  readonly runs?: number;
  readonly quick: boolean;
  readonly signal: AbortSignal;
  readonly log?: (line: string) => void;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The measured runs of a group: the command line's, else the group's default, else 10 (3 quick). */
export function runsFor(group: FigureGroup, options: { runs?: number; quick: boolean }): number {
  if (options.runs !== undefined) return options.runs;
  const d = group.defaultRuns ?? { full: 10, quick: 3 };
  return options.quick ? d.quick : d.full;
}

/** The figures `target` must measure (those without `only`, and those whose `only` names it). */
function figuresOf(specs: readonly FigureSpec[], target?: TargetId): FigureSpec[] {
  return specs.filter((f) => !f.only || (target !== undefined && f.only.includes(target)));
}

function missingValue(group: FigureGroup, specs: readonly FigureSpec[], values: Record<string, number>) {
  for (const f of specs) {
    const v = values[f.id];
    if (v === undefined || !Number.isFinite(v)) {
      throw new Error(`Group ${group.id} returned no finite value for figure ${f.id} (got ${v})`);
    }
  }
}

/** Runs one group against every target and summarises each figure per target. */
export async function runGroup(
  group: FigureGroup,
  targets: readonly Target[],
  options: RunOptions,
): Promise<GroupResult> {
  const log = options.log ?? (() => {});
  const runs = runsFor(group, options);
  const state = new Map<TargetId, { reason?: string; samples: Record<string, number[]> }>();
  for (const t of targets) {
    state.set(t.id, { reason: await t.unavailableReason(), samples: {} });
  }
  let refFailure: string | undefined;
  const refSamples: Record<string, number[]> = {};

  const take = async (t: Target, run: number) => {
    const s = state.get(t.id)!;
    if (s.reason !== undefined) return;
    options.signal.throwIfAborted();
    try {
      const values = await group.sample(t, { signal: options.signal, quick: options.quick, run });
      const figures = figuresOf(group.figures, t.id);
      missingValue(group, figures, values);
      if (run === 0) return;
      for (const f of figures) (s.samples[f.id] ??= []).push(values[f.id]!);
      log(
        `  ${group.id} run ${run} ${t.id}: ${figures.map((f) => `${f.id}=${fmt(values[f.id]!)}`).join(" ")}`,
      );
    } catch (err) {
      if (options.signal.aborted) throw err;
      // A target that fails once is reported as failed rather than measured on its good runs only.
      s.reason = `${run === 0 ? "warm-up" : `run ${run}`} failed: ${errorText(err)}`;
      s.samples = {};
      log(`  ${group.id} ${t.id}: ${s.reason}`);
    }
  };

  const takeReference = async (run: number) => {
    if (!group.reference || !group.references?.length || refFailure !== undefined) return;
    options.signal.throwIfAborted();
    try {
      const values = await group.reference({ signal: options.signal, quick: options.quick, run });
      missingValue(group, group.references, values);
      for (const f of group.references) (refSamples[f.id] ??= []).push(values[f.id]!);
      log(
        `  ${group.id} run ${run} reference: ${
          group.references.map((f) => `${f.id}=${fmt(values[f.id]!)}`).join(" ")
        }`,
      );
    } catch (err) {
      if (options.signal.aborted) throw err;
      refFailure = `run ${run} failed: ${errorText(err)}`;
      log(`  ${group.id} reference: ${refFailure}`);
    }
  };

  let setupFailure: string | undefined;
  try {
    if (group.setup) {
      log(`${group.title}: setting up`);
      try {
        await group.setup({ signal: options.signal, quick: options.quick, log });
      } catch (err) {
        if (options.signal.aborted) throw err;
        setupFailure = `setup failed: ${errorText(err)}`;
        log(`  ${group.id}: ${setupFailure}`);
      }
    }
    if (setupFailure === undefined) {
      if (group.warmup ?? true) {
        log(`${group.title}: warm-up`);
        for (const t of targets) await take(t, 0);
      }
      for (let run = 1; run <= runs; run++) {
        log(`${group.title}: run ${run}/${runs}`);
        for (const t of targets) await take(t, run);
        await takeReference(run);
      }
    }
  } finally {
    await group.teardown?.();
  }

  const outcomes = {} as Record<TargetId, { available: boolean; reason?: string }>;
  for (const t of targets) {
    const reason = setupFailure ?? state.get(t.id)!.reason;
    outcomes[t.id] = reason === undefined ? { available: true } : { available: false, reason };
  }
  const figures = group.figures.map((f): FigureResult => {
    const summaries: Partial<Record<TargetId, Summary>> = {};
    const samples: Partial<Record<TargetId, number[]>> = {};
    for (const t of targets) {
      const xs = state.get(t.id)!.samples[f.id];
      if (setupFailure === undefined && xs && xs.length > 0) {
        samples[t.id] = xs;
        summaries[t.id] = summarize(xs);
      }
    }
    return { ...f, group: group.id, summaries, samples };
  });
  const references = (group.references ?? []).map((f): ReferenceResult => {
    const xs = refFailure === undefined && setupFailure === undefined ? refSamples[f.id] ?? [] : [];
    return { ...f, group: group.id, samples: xs, ...(xs.length > 0 ? { summary: summarize(xs) } : {}) };
  });
  const refReason = setupFailure ?? refFailure;
  return {
    id: group.id,
    title: group.title,
    runs,
    ...(group.notes ? { notes: group.notes } : {}),
    figures,
    ...(references.length > 0 ? { references } : {}),
    outcomes,
    ...(references.length > 0 && refReason !== undefined ? { referenceFailure: refReason } : {}),
  };
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(3);
}
