/** Order statistics for benchmark samples: small, dependency-free, and exact about empty input. */

export interface Summary {
  readonly n: number;
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

function sorted(samples: readonly number[]): number[] {
  for (const x of samples) {
    if (!Number.isFinite(x)) throw new RangeError(`Cannot summarise samples: ${x} is not a finite number`);
  }
  return [...samples].sort((a, b) => a - b);
}

/**
 * The q-quantile (0 ≤ q ≤ 1) with linear interpolation between closest ranks (R's type 7, numpy's
 * default), so p50 of an even count is the mean of the middle two.
 */
export function quantile(samples: readonly number[], q: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`Cannot take quantile ${q}: it must lie in [0, 1]`);
  const xs = sorted(samples);
  if (xs.length === 0) throw new RangeError("Cannot take a quantile of no samples");
  const pos = (xs.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = xs[lo]!;
  const b = xs[hi]!;
  return a + (b - a) * (pos - lo);
}

export function median(samples: readonly number[]): number {
  return quantile(samples, 0.5);
}

export function summarize(samples: readonly number[]): Summary {
  const xs = sorted(samples);
  if (xs.length === 0) throw new RangeError("Cannot summarise no samples");
  return { n: xs.length, median: quantile(xs, 0.5), min: xs[0]!, max: xs[xs.length - 1]! };
}

/**
 * Berth over containerd, or undefined when either side has no figure or the baseline is zero
 * (a ratio against zero would print as Infinity and mean nothing).
 */
export function ratio(baseline: number | undefined, candidate: number | undefined): number | undefined {
  if (baseline === undefined || candidate === undefined) return undefined;
  if (baseline === 0) return undefined;
  return candidate / baseline;
}

/**
 * The widest ratio the samples allow (candidate's min over baseline's max, candidate's max over
 * baseline's min): if two runs' ratios of medians differ by less than this band, they agree within noise.
 */
export function ratioBounds(baseline: Summary, candidate: Summary): [number, number] | undefined {
  if (baseline.min <= 0 || baseline.max <= 0) return undefined;
  return [candidate.min / baseline.max, candidate.max / baseline.min];
}

/** A figure printed with about three significant digits, without exponent notation. */
export function formatFigure(x: number): string {
  const abs = Math.abs(x);
  if (abs >= 100) return x.toFixed(0);
  if (abs >= 10) return x.toFixed(1);
  if (abs >= 1) return x.toFixed(2);
  return x.toFixed(3);
}
