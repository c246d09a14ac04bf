import { invalidArgument } from "../../base/errors.ts";
import { parseGoDuration } from "../../base/duration.ts";

export { formatGoDuration, parseGoDuration } from "../../base/duration.ts";

/**
 * containerd 1.6's `[plugins."io.containerd.gc.v1.scheduler"]` settings (gc/scheduler/scheduler.go),
 * with its defaults and its clamps.
 */
export interface GcConfig {
  /**
   * The share of wall time scheduled collections may take: after each one the interval between
   * scheduled collections becomes avg / pauseThreshold - avg, avg being the mean pause so far.
   * Default 0.02 (20 ms of every second); clamped to [0, 0.5]; 0 keeps the interval at 1 s.
   */
  readonly pauseThreshold: number;
  /**
   * Deletions since the last collection that schedule one at once. Default 0: a deletion makes the
   * next scheduled collection run instead of being skipped.
   */
  readonly deletionThreshold: number;
  /**
   * Mutations since the last collection that make the next scheduled collection run. Default 100;
   * 0: mutations alone never do.
   */
  readonly mutationThreshold: number;
  /** Delay of a collection that a trigger or a threshold asked for. Default 0. */
  readonly scheduleDelayMs: number;
  /** Delay of the first collection after start; 0: none until something asks. Default 100 ms. */
  readonly startupDelayMs: number;
}

export const defaultGcConfig: GcConfig = Object.freeze({
  pauseThreshold: 0.02,
  deletionThreshold: 0,
  mutationThreshold: 100,
  scheduleDelayMs: 0,
  startupDelayMs: 100,
});

/** The config keys the scheduler reads, as containerd spells them. */
export const gcConfigKeys = [
  "pause_threshold",
  "deletion_threshold",
  "mutation_threshold",
  "schedule_delay",
  "startup_delay",
] as const;

/** Reads the scheduler's config table; a value of the wrong type is an invalid argument. */
export function parseGcConfig(table: Readonly<Record<string, unknown>>): GcConfig {
  const number = (key: string, fallback: number, integer: boolean): number => {
    const v = table[key];
    if (v === undefined) return fallback;
    const n = typeof v === "bigint" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
      throw invalidArgument(
        `Invalid gc scheduler ${key} ${JSON.stringify(String(v))}: use ${
          integer ? "an integer" : "a number"
        }`,
      );
    }
    return n;
  };
  const duration = (key: string, fallbackMs: number): number => {
    const v = table[key];
    if (v === undefined) return fallbackMs;
    if (typeof v !== "string") {
      throw invalidArgument(
        `Invalid gc scheduler ${key} ${
          JSON.stringify(String(v))
        }: use a duration string such as "100ms" or "1s"`,
      );
    }
    try {
      return parseGoDuration(v);
    } catch (err) {
      throw invalidArgument(`Invalid gc scheduler ${key}: ${(err as Error).message}`);
    }
  };
  const d = defaultGcConfig;
  return {
    pauseThreshold: clamp(number("pause_threshold", d.pauseThreshold, false), 0, 0.5),
    deletionThreshold: number("deletion_threshold", d.deletionThreshold, true),
    mutationThreshold: Math.max(0, number("mutation_threshold", d.mutationThreshold, true)),
    scheduleDelayMs: Math.max(0, duration("schedule_delay", d.scheduleDelayMs)),
    startupDelayMs: Math.max(0, duration("startup_delay", d.startupDelayMs)),
  };
}

function clamp(n: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, n));
}
