import { invalidArgument } from "../../base/errors.ts";

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

const units: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3, // U+00B5
  "μs": 1e-3, // U+03BC
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Go's time.ParseDuration, in milliseconds: a signed sequence of decimal numbers each with a unit
 * (ns, us, µs, ms, s, m, h), such as "300ms", "-1.5h" or "2h45m"; "0" alone needs no unit.
 */
export function parseGoDuration(text: string): number {
  const bad = (why: string) => new Error(`Invalid duration ${JSON.stringify(text)}: ${why}`);
  let s = text;
  let sign = 1;
  if (s.startsWith("-") || s.startsWith("+")) {
    if (s[0] === "-") sign = -1;
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw bad("it is empty");
  const part = /^(\d*)(?:\.(\d*))?([^\d.]+)/;
  let total = 0;
  while (s !== "") {
    const m = part.exec(s);
    if (!m) throw bad(/^[\d.]+$/.test(s) ? "missing unit" : "expected a number");
    if (m[1] === "" && (m[2] ?? "") === "") throw bad("expected a number");
    const unit = units[m[3]!];
    if (unit === undefined) throw bad(`unknown unit ${JSON.stringify(m[3])}`);
    total += Number(`${m[1] || "0"}.${m[2] || "0"}`) * unit;
    s = s.slice(m[0].length);
  }
  return sign * total;
}

/** A duration in milliseconds as Go's time.Duration.String() writes it: "0s", "100ms", "1.5s", "1m30s". */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return "0s";
  const sign = ms < 0 ? "-" : "";
  let rest = Math.abs(ms);
  if (rest < 1) return `${sign}${trim(rest * 1000)}µs`;
  if (rest < 1000) return `${sign}${trim(rest)}ms`;
  let out = "";
  if (rest >= 3_600_000) {
    out += `${Math.floor(rest / 3_600_000)}h`;
    rest %= 3_600_000;
  }
  if (out !== "" || rest >= 60_000) {
    out += `${Math.floor(rest / 60_000)}m`;
    rest %= 60_000;
  }
  return `${sign}${out}${trim(rest / 1000)}s`;
}

function trim(n: number): string {
  return String(Math.round(n * 1e6) / 1e6);
}

function clamp(n: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, n));
}
