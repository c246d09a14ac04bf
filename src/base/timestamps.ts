import { create } from "@bufbuild/protobuf";
import { type Timestamp, TimestampSchema } from "@bufbuild/protobuf/wkt";
import type { UnixNanos } from "./clock.ts";

const NANOS_PER_SECOND = 1_000_000_000n;

/** A core time as google.protobuf.Timestamp: whole seconds, and nanos in [0, 1e9) even before 1970. */
export function timestampFromNanos(t: UnixNanos): Timestamp {
  let seconds = t / NANOS_PER_SECOND;
  let nanos = t % NANOS_PER_SECOND;
  if (nanos < 0n) {
    seconds -= 1n;
    nanos += NANOS_PER_SECOND;
  }
  return create(TimestampSchema, { seconds, nanos: Number(nanos) });
}

/** A google.protobuf.Timestamp as a core time; an absent one is the epoch. */
export function nanosFromTimestamp(t: Timestamp | undefined): UnixNanos {
  return t === undefined ? 0n : t.seconds * NANOS_PER_SECOND + BigInt(t.nanos);
}
