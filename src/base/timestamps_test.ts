import assert from "node:assert/strict";
import { nanosFromTimestamp, timestampFromNanos } from "./timestamps.ts";

Deno.test("timestampFromNanos() keeps every nanosecond and nanosFromTimestamp() reverses it", () => {
  const t = 1796606078549051373n;
  const ts = timestampFromNanos(t);
  assert.equal(ts.seconds, 1796606078n);
  assert.equal(ts.nanos, 549051373);
  assert.equal(nanosFromTimestamp(ts), t);
  // Before 1970 the nanos stay positive, as protobuf requires.
  const early = timestampFromNanos(-1n);
  assert.deepEqual([early.seconds, early.nanos], [-1n, 999_999_999]);
  assert.equal(nanosFromTimestamp(early), -1n);
  assert.equal(nanosFromTimestamp(undefined), 0n);
});
