import type { Sample } from "./exposition.ts";

/** client_golang's DefBuckets, which go-grpc-prometheus' handling-time histogram uses. */
export const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One histogram series: counts per bucket, kept cheap to observe on every call. */
export class Histogram {
  readonly #bounds: readonly number[];
  /** Observations per bucket (not cumulative); the last holds those above every bound. */
  readonly #counts: number[];
  #sum = 0;

  constructor(bounds: readonly number[] = DEFAULT_BUCKETS) {
    this.#bounds = bounds;
    this.#counts = new Array(bounds.length + 1).fill(0);
  }

  observe(v: number): void {
    let i = 0;
    while (i < this.#bounds.length && v > this.#bounds[i]!) i++;
    this.#counts[i]!++;
    this.#sum += v;
  }

  /** The `_bucket` (cumulative, `le`), `_sum` and `_count` samples of this series. */
  samples(labels: Readonly<Record<string, string>> = {}): Sample[] {
    return histogramSamples(labels, this.#bounds, this.#counts, this.#sum);
  }
}

/** Samples of a histogram from per-bucket counts (the last: above every bound) and the sum. */
export function histogramSamples(
  labels: Readonly<Record<string, string>>,
  bounds: readonly number[],
  counts: readonly number[],
  sum: number,
): Sample[] {
  const out: Sample[] = [];
  let seen = 0;
  bounds.forEach((le, i) => {
    seen += counts[i] ?? 0;
    out.push({ labels: { ...labels, le: String(le) }, value: seen, suffix: "_bucket" });
  });
  seen += counts[bounds.length] ?? 0;
  out.push({ labels: { ...labels, le: "+Inf" }, value: seen, suffix: "_bucket" });
  out.push({ labels, value: sum, suffix: "_sum" });
  out.push({ labels, value: seen, suffix: "_count" });
  return out;
}
