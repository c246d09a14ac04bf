import assert from "node:assert/strict";
import { decide, formatPolicy, logIO, type ObservedTask, parsePolicy, RestartLabels as L } from "./policy.ts";

Deno.test("parsePolicy() reads containerd 1.7's policies, an empty one as always", () => {
  assert.deepEqual(parsePolicy(""), { name: "always", maxRetries: 0 });
  assert.deepEqual(parsePolicy("no"), { name: "no", maxRetries: 0 });
  assert.deepEqual(parsePolicy("always"), { name: "always", maxRetries: 0 });
  assert.deepEqual(parsePolicy("unless-stopped"), { name: "unless-stopped", maxRetries: 0 });
  assert.deepEqual(parsePolicy("on-failure"), { name: "on-failure", maxRetries: 0 });
  assert.deepEqual(parsePolicy("on-failure:3"), { name: "on-failure", maxRetries: 3 });
});

Deno.test("parsePolicy() rejects unknown policies and a count where none is taken", () => {
  assert.throws(() => parsePolicy("sometimes"), /not supported/);
  assert.throws(() => parsePolicy("always:3"), /does not take a maximum retry count/);
  assert.throws(() => parsePolicy("on-failure:x"), /bad retry count "x"/);
  assert.throws(() => parsePolicy("on-failure:"), /bad retry count/);
});

Deno.test("formatPolicy() writes the label value as containerd's Policy.String()", () => {
  assert.equal(formatPolicy(parsePolicy("on-failure:2")), "on-failure:2");
  assert.equal(formatPolicy(parsePolicy("on-failure")), "on-failure");
  assert.equal(formatPolicy(parsePolicy("")), "always");
});

const running = { [L.status]: "running" };
const stopped: ObservedTask = { status: "stopped", exitStatus: 137 };
const clean: ObservedTask = { status: "stopped", exitStatus: 0 };
const absent: ObservedTask = { status: "absent", exitStatus: 0 };
const alive: ObservedTask = { status: "running", exitStatus: 0 };

/** The decision table: labels, task → action (and the count written on a start). */
const table: [string, Record<string, string>, ObservedTask, string][] = [
  ["no status label", {}, stopped, "none"],
  ["running as desired", running, alive, "none"],
  ["created task is left to its client", running, { status: "created", exitStatus: 0 }, "none"],
  ["paused task stays paused", running, { status: "paused", exitStatus: 0 }, "none"],
  ["1.6 label set only: stopped task starts", running, stopped, "start:1"],
  ["1.6 label set only: missing task starts", running, absent, "start:1"],
  ["1.6 label set only: exit 0 starts too", running, clean, "start:1"],
  ["always counts on", { ...running, [L.policy]: "always", [L.count]: "4" }, stopped, "start:5"],
  [
    "always, stopped by hand",
    { ...running, [L.policy]: "always", [L.explicitlyStopped]: "true" },
    stopped,
    "none",
  ],
  ["always, started again by hand", { ...running, [L.explicitlyStopped]: "false" }, stopped, "start:1"],
  ["no", { ...running, [L.policy]: "no" }, stopped, "none"],
  ["unsupported policy", { ...running, [L.policy]: "sometimes" }, stopped, "none"],
  ["on-failure after a failure", { ...running, [L.policy]: "on-failure" }, stopped, "start:1"],
  ["on-failure after exit 0", { ...running, [L.policy]: "on-failure" }, clean, "none"],
  ["on-failure, missing task (status unknown: 0)", { ...running, [L.policy]: "on-failure" }, absent, "none"],
  [
    "on-failure:2 below its maximum",
    { ...running, [L.policy]: "on-failure:2", [L.count]: "1" },
    stopped,
    "start:2",
  ],
  [
    "on-failure:2 at its maximum",
    { ...running, [L.policy]: "on-failure:2", [L.count]: "2" },
    stopped,
    "none",
  ],
  ["on-failure:1 restarts once", { ...running, [L.policy]: "on-failure:1" }, stopped, "start:1"],
  ["on-failure with a bad count", { ...running, [L.policy]: "on-failure", [L.count]: "x" }, stopped, "none"],
  ["always with a bad count counts from 0", { ...running, [L.count]: "x" }, stopped, "start:1"],
  ["on-failure:-1 never restarts", { ...running, [L.policy]: "on-failure:-1" }, stopped, "none"],
  ["unless-stopped", { ...running, [L.policy]: "unless-stopped" }, clean, "start:1"],
  [
    "unless-stopped, stopped by hand",
    { ...running, [L.policy]: "unless-stopped", [L.explicitlyStopped]: "true" },
    stopped,
    "none",
  ],
  ["desired stopped, task running", { [L.status]: "stopped" }, alive, "stop"],
  ["desired stopped, task paused", { [L.status]: "stopped" }, { status: "paused", exitStatus: 0 }, "stop"],
  ["desired stopped, task stopped", { [L.status]: "stopped" }, stopped, "none"],
  ["desired stopped, no task", { [L.status]: "stopped" }, absent, "none"],
  ["desired paused is not handled", { [L.status]: "paused" }, stopped, "none"],
];

for (const [name, labels, task, want] of table) {
  Deno.test(`decide(): ${name} → ${want}`, () => {
    const d = decide(labels, task);
    const got = d.action === "start" ? `start:${d.labels[L.count]}` : d.action;
    assert.equal(got, want, d.action === "none" ? d.reason : "");
  });
}

Deno.test("decide() at boot starts an always container stopped by hand and clears the mark; unless-stopped stays down", () => {
  const always = decide({ ...running, [L.explicitlyStopped]: "true" }, absent, { boot: true });
  assert.equal(always.action, "start");
  assert.deepEqual(always.action === "start" && always.labels, {
    [L.count]: "1",
    [L.explicitlyStopped]: "false",
  });
  const unless = decide({ ...running, [L.policy]: "unless-stopped", [L.explicitlyStopped]: "true" }, absent, {
    boot: true,
  });
  assert.equal(unless.action, "none");
});

Deno.test("logIO() gives both streams the log URI, else the deprecated log path as a file URI, else none", () => {
  const uri = "binary:///usr/bin/berth?_BERTH_INTERNAL_LOGGING=json-file&path=/x/c-json.log";
  assert.deepEqual(logIO({ [L.logUri]: uri, [L.logPath]: "/ignored" }), { stdout: uri, stderr: uri });
  assert.deepEqual(logIO({ [L.logPath]: "/var/log/a b.log" }), {
    stdout: "file:///var/log/a%20b.log",
    stderr: "file:///var/log/a%20b.log",
  });
  assert.deepEqual(logIO({}), { stdout: "", stderr: "" });
  const d = decide({ ...running, [L.logUri]: uri }, stopped);
  assert.equal(d.action === "start" && d.stdout, uri);
});
