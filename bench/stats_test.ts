import assert from "node:assert/strict";
import { formatFigure, median, quantile, ratio, ratioBounds, summarize } from "./stats.ts";

Deno.test("median() of an odd count is the middle sample regardless of input order", () => {
  assert.equal(median([9, 1, 5]), 5);
});

Deno.test("median() of an even count is the mean of the middle two", () => {
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

Deno.test("quantile() interpolates linearly between closest ranks", () => {
  const xs = Array.from({ length: 101 }, (_, i) => i); // 0..100
  assert.equal(quantile(xs, 0.99), 99);
  assert.equal(quantile([0, 10], 0.25), 2.5);
  assert.equal(quantile([7], 0.99), 7);
  assert.equal(quantile([3, 1, 2], 0), 1);
  assert.equal(quantile([3, 1, 2], 1), 3);
});

Deno.test("quantile() rejects empty input, NaN samples and q outside [0, 1]", () => {
  assert.throws(() => quantile([], 0.5), /no samples/);
  assert.throws(() => quantile([1, Number.NaN], 0.5), /not a finite number/);
  assert.throws(() => quantile([1], 1.5), /\[0, 1\]/);
  assert.throws(() => quantile([1], Number.NaN), /\[0, 1\]/);
});

Deno.test("summarize() reports count, median, min and max without mutating its input", () => {
  const xs = [30, 10, 20, 40];
  assert.deepEqual(summarize(xs), { n: 4, median: 25, min: 10, max: 40 });
  assert.deepEqual(xs, [30, 10, 20, 40]);
  assert.throws(() => summarize([]), /no samples/);
});

Deno.test("ratio() is candidate over baseline and undefined when a side is missing or zero", () => {
  assert.equal(ratio(40, 10), 0.25);
  assert.equal(ratio(undefined, 10), undefined);
  assert.equal(ratio(10, undefined), undefined);
  assert.equal(ratio(0, 10), undefined);
});

Deno.test("ratioBounds() spans candidate min/baseline max to candidate max/baseline min", () => {
  const base = summarize([8, 10, 12]);
  const cand = summarize([4, 5, 6]);
  assert.deepEqual(ratioBounds(base, cand), [4 / 12, 6 / 8]);
  assert.equal(ratioBounds(summarize([0, 1]), cand), undefined);
});

Deno.test("formatFigure() keeps about three significant digits", () => {
  assert.equal(formatFigure(123.456), "123");
  assert.equal(formatFigure(37.44), "37.4");
  assert.equal(formatFigure(1.234), "1.23");
  assert.equal(formatFigure(0.7884), "0.788");
});
