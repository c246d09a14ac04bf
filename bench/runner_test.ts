import assert from "node:assert/strict";
import { type FigureGroup, runGroup } from "./runner.ts";
import type { Daemon, Target, TargetId } from "./targets.ts";

function fakeTarget(id: TargetId, reason?: string): Target {
  return {
    id,
    unavailableReason: () => Promise.resolve(reason),
    start: () => Promise.reject(new Error("fake targets do not start")) as Promise<Daemon>,
    cli: () => Promise.resolve(undefined),
    dispose: () => Promise.resolve(),
  };
}

Deno.test("runGroup() warms up each target, then alternates A B A B and summarises per target", async () => {
  const order: string[] = [];
  const group: FigureGroup = {
    id: "g",
    title: "G",
    figures: [{ id: "x", label: "x", unit: "ms" }],
    sample(target, ctx) {
      order.push(`${target.id}${ctx.run}`);
      return Promise.resolve({ x: target.id === "containerd" ? ctx.run : 10 * ctx.run });
    },
  };
  const r = await runGroup(group, [fakeTarget("containerd"), fakeTarget("berth")], {
    runs: 3,
    quick: true,
    signal: new AbortController().signal,
  });
  assert.deepEqual(order, [
    "containerd0",
    "berth0",
    "containerd1",
    "berth1",
    "containerd2",
    "berth2",
    "containerd3",
    "berth3",
  ]);
  const f = r.figures[0]!;
  assert.deepEqual(f.samples, { containerd: [1, 2, 3], berth: [10, 20, 30] });
  assert.deepEqual(f.summaries.berth, { n: 3, median: 20, min: 10, max: 30 });
  assert.deepEqual(r.outcomes, { containerd: { available: true }, berth: { available: true } });
});

Deno.test("runGroup() reports an absent or failing target with its reason and no figures", async () => {
  const group: FigureGroup = {
    id: "g",
    title: "G",
    figures: [{ id: "x", label: "x", unit: "ms" }],
    sample(target, ctx) {
      if (target.id === "containerd" && ctx.run === 2) return Promise.reject(new Error("socket vanished"));
      return Promise.resolve({ x: 1 });
    },
  };
  const r = await runGroup(group, [fakeTarget("containerd"), fakeTarget("berth", "main.ts does not exist")], {
    runs: 3,
    quick: true,
    signal: new AbortController().signal,
  });
  assert.deepEqual(r.outcomes.berth, { available: false, reason: "main.ts does not exist" });
  assert.deepEqual(r.outcomes.containerd, { available: false, reason: "run 2 failed: socket vanished" });
  assert.deepEqual(r.figures[0]!.samples, {});
});

Deno.test("runGroup() rejects a group that leaves a figure without a value", async () => {
  const group: FigureGroup = {
    id: "g",
    title: "G",
    figures: [{ id: "x", label: "x", unit: "ms" }, { id: "y", label: "y", unit: "ms" }],
    sample: () => Promise.resolve({ x: 1 }),
  };
  const r = await runGroup(group, [fakeTarget("containerd")], {
    runs: 1,
    quick: true,
    signal: new AbortController().signal,
  });
  assert.match(r.outcomes.containerd.reason ?? "", /returned no finite value for figure y/);
});

Deno.test("runGroup() takes reference figures after both targets each run and always tears down", async () => {
  const order: string[] = [];
  const group: FigureGroup = {
    id: "g",
    title: "G",
    warmup: false,
    defaultRuns: { full: 5, quick: 2 },
    figures: [{ id: "x", label: "x", unit: "ms" }],
    references: [{ id: "floor", label: "floor", unit: "ms" }],
    setup: () => Promise.resolve(void order.push("setup")),
    teardown: () => Promise.resolve(void order.push("teardown")),
    sample: (t, ctx) => Promise.resolve(void order.push(`${t.id}${ctx.run}`)).then(() => ({ x: 1 })),
    reference: (ctx) => Promise.resolve(void order.push(`ref${ctx.run}`)).then(() => ({ floor: ctx.run })),
  };
  const r = await runGroup(group, [fakeTarget("containerd"), fakeTarget("berth")], {
    quick: true,
    signal: new AbortController().signal,
  });
  assert.deepEqual(order, [
    "setup",
    "containerd1",
    "berth1",
    "ref1",
    "containerd2",
    "berth2",
    "ref2",
    "teardown",
  ]);
  assert.equal(r.runs, 2);
  assert.deepEqual(r.references?.[0]?.samples, [1, 2]);
  assert.equal(r.referenceFailure, undefined);
});

Deno.test("runGroup() reports a failed setup for every target and still tears down", async () => {
  let tornDown = false;
  const group: FigureGroup = {
    id: "g",
    title: "G",
    figures: [{ id: "x", label: "x", unit: "ms" }],
    setup: () => Promise.reject(new Error("registry would not start")),
    teardown: () => Promise.resolve(void (tornDown = true)),
    sample: () => Promise.reject(new Error("must not be called")),
  };
  const r = await runGroup(group, [fakeTarget("containerd"), fakeTarget("berth")], {
    runs: 1,
    quick: true,
    signal: new AbortController().signal,
  });
  assert.equal(tornDown, true);
  assert.deepEqual(r.outcomes.berth, { available: false, reason: "setup failed: registry would not start" });
  assert.deepEqual(r.figures[0]!.samples, {});
});
