/**
 * The pulls a daemon ran, for its metrics: how many and how they ended, the bytes downloaded (blobs
 * already in the store cost nothing), and a histogram of how long they took.
 */

/** Upper bounds, in seconds: a pull takes from a fraction of a second (all local) to minutes. */
export const PULL_SECONDS_BUCKETS: readonly number[] = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export interface PullRecord {
  readonly ok: boolean;
  /** Bytes fetched from the registry. */
  readonly bytes: number;
  readonly seconds: number;
}

export class PullStats {
  succeeded = 0;
  failed = 0;
  bytes = 0;
  /** Pulls per bucket of PULL_SECONDS_BUCKETS (not cumulative); the last counts those over every bound. */
  readonly buckets: number[] = new Array(PULL_SECONDS_BUCKETS.length + 1).fill(0);
  seconds = 0;

  record(pull: PullRecord): void {
    if (pull.ok) this.succeeded++;
    else this.failed++;
    this.bytes += pull.bytes;
    this.seconds += pull.seconds;
    const i = PULL_SECONDS_BUCKETS.findIndex((le) => pull.seconds <= le);
    this.buckets[i < 0 ? PULL_SECONDS_BUCKETS.length : i]!++;
  }
}
