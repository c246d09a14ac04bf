import assert from "node:assert/strict";
import { defaultGcConfig, formatGoDuration, parseGcConfig, parseGoDuration } from "./mod.ts";

Deno.test("parseGcConfig gives containerd 1.6's scheduler defaults for an empty table", () => {
  assert.deepEqual(parseGcConfig({}), {
    pauseThreshold: 0.02,
    deletionThreshold: 0,
    mutationThreshold: 100,
    scheduleDelayMs: 0,
    startupDelayMs: 100,
  });
  assert.deepEqual(parseGcConfig({}), defaultGcConfig);
});

Deno.test("parseGcConfig reads containerd's keys and clamps as containerd does", () => {
  const c = parseGcConfig({
    pause_threshold: 0.9,
    deletion_threshold: 5,
    mutation_threshold: -3,
    schedule_delay: "1.5s",
    startup_delay: "-10ms",
  });
  assert.deepEqual(c, {
    pauseThreshold: 0.5,
    deletionThreshold: 5,
    mutationThreshold: 0,
    scheduleDelayMs: 1500,
    startupDelayMs: 0,
  });
  assert.equal(parseGcConfig({ startup_delay: "0s" }).startupDelayMs, 0);
  assert.equal(parseGcConfig({ pause_threshold: -1 }).pauseThreshold, 0);
});

Deno.test("parseGcConfig rejects values of the wrong type, naming the key", () => {
  assert.throws(() => parseGcConfig({ startup_delay: 100 }), /startup_delay "100": use a duration string/);
  assert.throws(() => parseGcConfig({ schedule_delay: "soon" }), /schedule_delay: Invalid duration "soon"/);
  assert.throws(() => parseGcConfig({ deletion_threshold: 1.5 }), /deletion_threshold "1.5": use an integer/);
  assert.throws(() => parseGcConfig({ pause_threshold: "lots" }), /pause_threshold "lots": use a number/);
});

Deno.test("parseGoDuration reads Go's time.ParseDuration syntax in milliseconds", () => {
  const cases: [string, number][] = [
    ["0", 0],
    ["100ms", 100],
    ["1s", 1000],
    ["1.5s", 1500],
    [".5s", 500],
    ["2h45m", 9_900_000],
    ["1m30s", 90_000],
    ["-1.5h", -5_400_000],
    ["+3s", 3000],
    ["1500us", 1.5],
    ["1500µs", 1.5],
    ["2000000ns", 2],
  ];
  for (const [text, ms] of cases) assert.equal(parseGoDuration(text), ms, text);
  for (const bad of ["", "1", "s", "1.5", "1x", "1s2", "--1s", "."]) {
    assert.throws(() => parseGoDuration(bad), /Invalid duration/, JSON.stringify(bad));
  }
});

Deno.test("formatGoDuration writes what Go's time.Duration.String() writes", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [100, "100ms"],
    [1.5, "1.5ms"],
    [0.25, "250µs"],
    [1500, "1.5s"],
    [90_000, "1m30s"],
    [3_600_000, "1h0m0s"],
    [-2000, "-2s"],
  ];
  for (const [ms, text] of cases) assert.equal(formatGoDuration(ms), text, String(ms));
});
