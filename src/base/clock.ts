/**
 * Wall-clock time at containerd's precision. containerd keeps Go's time.Time, nanoseconds, and its
 * clients check that a created_at lies between their own time.Now() before and after the call: a
 * millisecond Date, rounded down, lands before the "before" most of the time.
 *
 * A time is a bigint of nanoseconds since 1970-01-01 UTC. A number holds integers exactly only up to
 * 2^53 (~9e15) and a time now is ~1.8e18 ns; int64 nanoseconds, as Go's UnixNano, last until 2262.
 */
import { realtimeNanos } from "../../ffi/clock.ts";

/** Nanoseconds since 1970-01-01 UTC. */
export type UnixNanos = bigint;

const NANOS_PER_MILLI = 1_000_000n;

/** A clock that never goes backwards and never reads before the real time of the call. */
export class Clock {
  readonly #source: () => UnixNanos;
  #last = 0n;

  /** `source` reads the wall clock; a test passes a scripted one. */
  constructor(source: () => UnixNanos) {
    this.#source = source;
  }

  /**
   * The current time. When the wall clock steps back (an NTP correction) it answers one nanosecond after
   * its previous answer instead, so that an update is never recorded before the creation it follows.
   */
  now(): UnixNanos {
    const t = this.#source();
    this.#last = t > this.#last ? t : this.#last + 1n;
    return this.#last;
  }
}

let system: Clock | undefined;

/** The system wall clock: clock_gettime(CLOCK_REALTIME), the clock a Go client's time.Now() reads. */
export function systemClock(): Clock {
  return system ??= new Clock(systemSource());
}

/** The current time from the system clock. */
export function now(): UnixNanos {
  return systemClock().now();
}

function systemSource(): () => UnixNanos {
  try {
    realtimeNanos();
    return realtimeNanos;
  } catch {
    // No FFI (a test run without --allow-ffi): Temporal reads the same clock to about a microsecond.
    return () => Temporal.Now.instant().epochNanoseconds;
  }
}

/** The time `ms` milliseconds after 1970 (a Date, a file's mtime). */
export function fromMillis(ms: number): UnixNanos {
  return BigInt(Math.trunc(ms)) * NANOS_PER_MILLI;
}

/** The millisecond of `t`, rounded down, for a Date. */
export function toMillis(t: UnixNanos): number {
  const ms = t / NANOS_PER_MILLI;
  return Number(t < 0n && t % NANOS_PER_MILLI !== 0n ? ms - 1n : ms);
}

/** RFC 3339 in UTC with up to nine fraction digits and trailing zeros trimmed, as Go's RFC3339Nano. */
export function formatRfc3339Nano(t: UnixNanos): string {
  return Temporal.Instant.fromEpochNanoseconds(t).toString();
}

/** Parses an RFC 3339 time with an offset ("Z" or ±hh:mm) and any fraction of a second, to the nanosecond. */
export function parseRfc3339(text: string): UnixNanos {
  return Temporal.Instant.from(text.trim()).epochNanoseconds;
}
