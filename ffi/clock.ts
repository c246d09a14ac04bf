/**
 * The system's wall clock at nanosecond resolution: clock_gettime(CLOCK_REALTIME), the clock Go's
 * time.Now() reads. JavaScript's Date has milliseconds, and Temporal.Now rounds through a double to
 * about a microsecond, in either direction (measured: a Temporal reading a few nanoseconds before the
 * clock_gettime that preceded it).
 */
import { check, libc } from "./libc.ts";

const CLOCK_REALTIME = 0;
const NANOS_PER_SECOND = 1_000_000_000n;

// struct timespec on 64-bit Linux: tv_sec and tv_nsec, both 64-bit. One buffer, reused: calls are synchronous.
const timespec = new BigInt64Array(2);

/** Nanoseconds since 1970-01-01 UTC, read from CLOCK_REALTIME. */
export function realtimeNanos(): bigint {
  check(
    libc().clock_gettime(CLOCK_REALTIME, timespec),
    "clock_gettime",
    () => "Cannot read the realtime clock",
  );
  return timespec[0]! * NANOS_PER_SECOND + timespec[1]!;
}
