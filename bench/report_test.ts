import assert from "node:assert/strict";
import { type Machine, markdown, mergeResults, ratioCell, rows, textTable } from "./report.ts";
import type { GroupResult } from "./runner.ts";
import { summarize } from "./stats.ts";

const GROUP: GroupResult = {
  id: "daemon",
  title: "Daemon",
  figures: [{
    group: "daemon",
    id: "idle_rss_mib",
    label: "idle RSS",
    unit: "MiB",
    samples: { containerd: [36, 38, 40] },
    summaries: { containerd: summarize([36, 38, 40]) },
  }],
  outcomes: {
    containerd: { available: true },
    berth: { available: false, reason: "/repo/main.ts does not exist" },
  },
};

const MACHINE: Machine = {
  date: "2026-01-01T00:00:00.000Z",
  cpu: "Test CPU",
  nproc: 2,
  memoryMiB: 1024,
  kernel: "6.1",
  versions: { deno: "2.9.6" },
};

Deno.test("textTable() shows containerd's median and range and 'unavailable' for a target without figures", () => {
  const lines = textTable([GROUP]).split("\n");
  assert.equal(lines.length, 4);
  assert.equal(lines[0], "Daemon");
  assert.match(lines[3]!, /^idle RSS\s+38\.0 MiB\s+unavailable\s+—\s+36\.0–40\.0\s+—$/);
});

Deno.test("rows() gives the ratio of medians when both targets have figures", () => {
  const both: GroupResult = {
    ...GROUP,
    figures: [{
      ...GROUP.figures[0]!,
      summaries: { containerd: summarize([40]), berth: summarize([30]) },
    }],
  };
  const [r] = rows([both]);
  assert.equal(r!.ratio, 0.75);
  assert.deepEqual(r!.ratioBounds, [0.75, 0.75]);
});

Deno.test("rows() and ratioCell() say whether a figure with a goal met it", () => {
  const withGoal = (containerd: number, berth: number): GroupResult => ({
    ...GROUP,
    figures: [{
      ...GROUP.figures[0]!,
      goal: 0.7,
      summaries: { containerd: summarize([containerd]), berth: summarize([berth]) },
    }],
  });
  assert.deepEqual([rows([withGoal(100, 60)])[0]!.goal, rows([withGoal(100, 60)])[0]!.goalMet], [0.7, true]);
  assert.equal(rows([withGoal(100, 80)])[0]!.goalMet, false);
  assert.equal(rows([GROUP])[0]!.goal, undefined);
  assert.equal(ratioCell(0.6, 0.7), "0.60× (goal ≤ 0.70×: met)");
  assert.equal(ratioCell(0.8, 0.7), "0.80× (goal ≤ 0.70×: missed)");
  assert.equal(ratioCell(undefined, 0.7), "— (goal ≤ 0.70×)");
  assert.equal(ratioCell(1.25, undefined), "1.25×");
});

Deno.test("markdown() names the machine and says why a target has no figures", () => {
  const md = markdown({
    machine: MACHINE,
    runs: 3,
    quick: true,
    command: "deno task bench",
    groups: [GROUP],
    rows: [],
  });
  assert.match(md, /^\| CPU \| Test CPU \|$/m);
  assert.match(md, /^\| idle RSS \| 38\.0 MiB \| unavailable \| — \| 36\.0–40\.0 \| — \|$/m);
  assert.match(md, /^- berth in "daemon": \/repo\/main\.ts does not exist$/m);
});

Deno.test("markdown() lists a group's reference figures in their own table, and its notes", () => {
  const md = markdown({
    machine: MACHINE,
    quick: false,
    command: "deno task bench",
    groups: [{
      ...GROUP,
      runs: 3,
      notes: ["Floor: runc alone."],
      references: [{
        group: "daemon",
        id: "floor_ms",
        label: "floor",
        unit: "ms",
        samples: [20, 22, 24],
        summary: summarize([20, 22, 24]),
      }],
    }],
    rows: [],
  });
  assert.match(md, /^\| floor \| 22\.0 ms \| 20\.0–24\.0 \|$/m);
  assert.match(md, /^- Floor: runc alone\.$/m);
  assert.match(md, /Measured runs per target: daemon 3\./);
});

Deno.test("mergeResults() keeps the groups a --groups run did not measure and records it as an update", () => {
  const docker: GroupResult = { ...GROUP, id: "docker", title: "Docker" };
  const earlier = {
    machine: MACHINE,
    runs: 3,
    quick: false,
    command: "deno task bench",
    groups: [GROUP],
    rows: rows([GROUP]),
  };
  const fresh = {
    machine: { ...MACHINE, date: "2026-02-01T00:00:00.000Z" },
    quick: true,
    command: "deno task bench --groups docker",
    groups: [docker],
    rows: rows([docker]),
  };
  const merged = mergeResults(earlier, fresh, ["daemon", "docker"]);
  assert.deepEqual(merged.groups.map((g) => g.id), ["daemon", "docker"]);
  assert.equal(merged.command, "deno task bench");
  assert.equal(merged.runs, undefined);
  assert.deepEqual(merged.updates, [{
    command: "deno task bench --groups docker",
    date: "2026-02-01T00:00:00.000Z",
    quick: true,
    groups: ["docker"],
  }]);
  assert.match(
    markdown(merged),
    /Group docker measured again by `deno task bench --groups docker` on 2026-02-01T00:00:00\.000Z \(--quick\)\./,
  );
  // Measuring the docker group again replaces the update; a run of every group replaces the file.
  const again = mergeResults(merged, { ...fresh, quick: false }, ["daemon", "docker"]);
  assert.equal(again.updates?.length, 1);
  assert.equal(again.updates?.[0]?.quick, false);
  const full = { ...fresh, command: "deno task bench", groups: [GROUP, docker] };
  assert.equal(mergeResults(merged, full, ["daemon", "docker"]), full);
  assert.equal(mergeResults(undefined, fresh, ["daemon", "docker"]), fresh);
});
