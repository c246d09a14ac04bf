import assert from "node:assert/strict";
import { realtimeNanos } from "../../ffi/clock.ts";
import { Clock, formatRfc3339Nano, fromMillis, now, parseRfc3339, toMillis } from "./clock.ts";

Deno.test("now() lies between two readings of the realtime clock taken around it, to the nanosecond", () => {
  const subMillisecond: bigint[] = [];
  for (let i = 0; i < 20; i++) {
    const before = realtimeNanos();
    const t = now();
    const after = realtimeNanos();
    assert.ok(before <= t && t <= after, `${before} <= ${t} <= ${after}`);
    if (t % 1_000_000n !== 0n) subMillisecond.push(t);
  }
  // A millisecond clock would put every reading on a whole millisecond.
  assert.ok(subMillisecond.length > 0);
  // The same clock as Date's, to the millisecond (between readings taken before and after).
  const before = Date.now();
  const ms = toMillis(now());
  const after = Date.now();
  assert.ok(before <= ms && ms <= after, `${before} <= ${ms} <= ${after}`);
});

Deno.test("Clock.now() never goes backwards when the wall clock steps back", () => {
  const readings = [100n, 200n, 150n, 150n, 300n];
  const clock = new Clock(() => readings.shift()!);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => clock.now()), [100n, 200n, 201n, 202n, 300n]);
});

Deno.test("formatRfc3339Nano() writes Go's RFC3339Nano and parseRfc3339() reads it back", () => {
  assert.equal(formatRfc3339Nano(1796606078549051373n), "2026-12-07T01:14:38.549051373Z");
  assert.equal(formatRfc3339Nano(1796606078500000000n), "2026-12-07T01:14:38.5Z");
  assert.equal(formatRfc3339Nano(0n), "1970-01-01T00:00:00Z");
  assert.equal(parseRfc3339("2026-12-07T01:14:38.549051373Z"), 1796606078549051373n);
  // What Date.toISOString() wrote before times had nanoseconds, and an offset other than Z.
  assert.equal(parseRfc3339("2026-12-07T01:14:38.549Z"), 1796606078549000000n);
  assert.equal(parseRfc3339("2026-12-07T02:14:38.000000001+01:00"), 1796606078000000001n);
  assert.throws(() => parseRfc3339("yesterday"), RangeError);
});

Deno.test("fromMillis() and toMillis() convert to and from Date's milliseconds, rounding down", () => {
  assert.equal(fromMillis(1796606078549), 1796606078549000000n);
  assert.equal(toMillis(1796606078549999999n), 1796606078549);
  assert.equal(toMillis(-1n), -1);
  assert.equal(
    new Date(toMillis(fromMillis(Date.UTC(2026, 0, 2)))).toISOString(),
    "2026-01-02T00:00:00.000Z",
  );
});
