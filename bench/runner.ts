/**
 * The shared runner. A figure group (one file per group: daemon, pull, run, memory …) knows how to
 * take one sample of each of its figures from one target; the runner warms each target up once,
 * then alternates targets run by run (A B A B …) so slow drift of the machine hits both alike.
 */

import { summarize, type Summary } from "./stats.ts";
import type { Target, TargetId } from "./targets.ts";

export interface FigureSpec {
  /** Stable key in results.json, e.g. "start_grpc_ms". */
  readonly id: string;
  /** Row label in the table. */
  readonly label: string;
  readonly unit: "ms" | "MiB";
}

export interface SampleContext {
  readonly signal: AbortSignal;
  readonly quick: boolean;
  /** 0 for the unmeasured warm-up, then 1..runs. */
  readonly run: number;
}

export interface FigureGroup {
  readonly id: string;
  readonly title: string;
  readonly figures: readonly FigureSpec[];
  /** One value per figure id, for one target. Must clean up everything it started, also on failure. */
  sample(target: Target, ctx: SampleContext): Promise<Record<string, number>>;
}

export interface FigureResult extends FigureSpec {
  readonly group: string;
  readonly summaries: Partial<Record<TargetId, Summary>>;
  readonly samples: Partial<Record<TargetId, number[]>>;
}

export interface GroupResult {
  readonly id: string;
  readonly title: string;
  readonly figures: FigureResult[];
  readonly outcomes: Record<TargetId, { available: boolean; reason?: string }>;
}

export interface RunOptions {
  readonly runs: number;
  readonly quick: boolean;
  readonly signal: AbortSignal;
  readonly log?: (line: string) => void;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Runs one group against every target and summarises each figure per target. */
export async function runGroup(
  group: FigureGroup,
  targets: readonly Target[],
  options: RunOptions,
): Promise<GroupResult> {
  const log = options.log ?? (() => {});
  const state = new Map<TargetId, { reason?: string; samples: Record<string, number[]> }>();
  for (const t of targets) {
    state.set(t.id, { reason: await t.unavailableReason(), samples: {} });
  }

  const take = async (t: Target, run: number) => {
    const s = state.get(t.id)!;
    if (s.reason !== undefined) return;
    options.signal.throwIfAborted();
    try {
      const values = await group.sample(t, { signal: options.signal, quick: options.quick, run });
      if (run === 0) return;
      for (const f of group.figures) {
        const v = values[f.id];
        if (v === undefined) throw new Error(`Group ${group.id} returned no value for figure ${f.id}`);
        (s.samples[f.id] ??= []).push(v);
      }
      log(
        `  ${group.id} run ${run} ${t.id}: ${group.figures.map((f) => `${f.id}=${values[f.id]}`).join(" ")}`,
      );
    } catch (err) {
      if (options.signal.aborted) throw err;
      // A target that fails once is reported as failed rather than measured on its good runs only.
      s.reason = `${run === 0 ? "warm-up" : `run ${run}`} failed: ${errorText(err)}`;
      s.samples = {};
      log(`  ${group.id} ${t.id}: ${s.reason}`);
    }
  };

  log(`${group.title}: warm-up`);
  for (const t of targets) await take(t, 0);
  for (let run = 1; run <= options.runs; run++) {
    for (const t of targets) await take(t, run);
  }

  const outcomes = {} as Record<TargetId, { available: boolean; reason?: string }>;
  for (const t of targets) {
    const s = state.get(t.id)!;
    outcomes[t.id] = s.reason === undefined ? { available: true } : { available: false, reason: s.reason };
  }
  const figures = group.figures.map((f): FigureResult => {
    const summaries: Partial<Record<TargetId, Summary>> = {};
    const samples: Partial<Record<TargetId, number[]>> = {};
    for (const t of targets) {
      const xs = state.get(t.id)!.samples[f.id];
      if (xs && xs.length > 0) {
        samples[t.id] = xs;
        summaries[t.id] = summarize(xs);
      }
    }
    return { ...f, group: group.id, summaries, samples };
  });
  return { id: group.id, title: group.title, figures, outcomes };
}
