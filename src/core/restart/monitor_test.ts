import assert from "node:assert/strict";
import { RestartMonitor } from "./monitor.ts";
import type { RestartContainer, RestartHost } from "./monitor.ts";
import { type ObservedTask, RestartLabels as L } from "./policy.ts";

const quiet = { debug() {}, info() {}, warn() {} };

/** A daemon in memory: containers with labels, tasks with a status, and the calls the monitor made. */
class FakeHost implements RestartHost {
  readonly containersByNs = new Map<string, Map<string, RestartContainer>>();
  readonly tasks = new Map<string, ObservedTask>();
  readonly calls: string[] = [];
  nextPid = 100;
  failStart = false;
  /** The started task exits at once with this status. */
  crashOnStart?: number;

  add(ns: string, id: string, labels: Record<string, string>, task?: ObservedTask, changedAtMs = 0): void {
    if (!this.containersByNs.has(ns)) this.containersByNs.set(ns, new Map());
    this.containersByNs.get(ns)!.set(id, { id, labels, changedAtMs });
    if (task) this.tasks.set(`${ns}/${id}`, task);
  }
  labels(ns: string, id: string): Readonly<Record<string, string>> {
    return this.containersByNs.get(ns)!.get(id)!.labels;
  }
  namespaces(): string[] {
    return [...this.containersByNs.keys()];
  }
  containers(ns: string): RestartContainer[] {
    return [...this.containersByNs.get(ns)?.values() ?? []].filter((c) => L.status in c.labels);
  }
  container(ns: string, id: string): RestartContainer | undefined {
    return this.containersByNs.get(ns)?.get(id);
  }
  task(ns: string, id: string): Promise<ObservedTask> {
    return Promise.resolve(this.tasks.get(`${ns}/${id}`) ?? { status: "absent", exitStatus: 0 });
  }
  removeTask(ns: string, id: string): Promise<void> {
    if (this.tasks.delete(`${ns}/${id}`)) this.calls.push(`remove ${ns}/${id}`);
    return Promise.resolve();
  }
  async startTask(ns: string, id: string, io: { stdout: string; stderr: string }): Promise<number> {
    await Promise.resolve();
    if (this.failStart) throw new Error("Cannot create task: no snapshot");
    this.calls.push(`start ${ns}/${id} ${io.stdout}`);
    this.tasks.set(`${ns}/${id}`, { status: "running", exitStatus: 0 });
    if (this.crashOnStart !== undefined) this.exit(ns, id, this.crashOnStart);
    return this.nextPid++;
  }
  setLabels(ns: string, id: string, labels: Readonly<Record<string, string>>): void {
    const c = this.containersByNs.get(ns)!.get(id)!;
    this.containersByNs.get(ns)!.set(id, { ...c, labels: { ...c.labels, ...labels } });
  }
  exit(ns: string, id: string, exitStatus: number): void {
    this.tasks.set(`${ns}/${id}`, { status: "stopped", exitStatus });
  }
}

const always = { [L.status]: "running", [L.policy]: "always", [L.logUri]: "file:///log" };

Deno.test("RestartMonitor.reconcileAll() deletes a stopped task and starts a new one with the log URI, in every namespace", async () => {
  const host = new FakeHost();
  host.add("a", "c1", always, { status: "stopped", exitStatus: 137 });
  host.add("b", "c2", { [L.status]: "running" });
  host.add("b", "plain", {}, { status: "stopped", exitStatus: 1 });
  host.add("b", "up", always, { status: "running", exitStatus: 0 });
  const m = new RestartMonitor(host, { log: quiet, clock: () => 1_000_000 });
  await m.reconcileAll();
  assert.deepEqual(host.calls, ["remove a/c1", "start a/c1 file:///log", "start b/c2 "]);
  assert.equal(host.labels("a", "c1")[L.count], "1");
  assert.equal(host.labels("b", "c2")[L.count], "1");
  await m.close();
});

Deno.test("RestartMonitor.reconcileAll() kills a task whose desired status is stopped", async () => {
  const host = new FakeHost();
  host.add("a", "c1", { [L.status]: "stopped" }, { status: "running", exitStatus: 0 });
  const m = new RestartMonitor(host, { log: quiet });
  await m.reconcileAll();
  assert.deepEqual(host.calls, ["remove a/c1"]);
  assert.equal(host.labels("a", "c1")[L.count], undefined);
  await m.close();
});

Deno.test("RestartMonitor leaves a container without a task alone for an interval after it changed, but not at boot", async () => {
  const now = 1_000_000;
  const host = new FakeHost();
  host.add("a", "young", always, undefined, now - 500);
  const m = new RestartMonitor(host, { log: quiet, clock: () => now, intervalMs: 10_000 });
  await m.reconcileAll();
  assert.deepEqual(host.calls, []);
  await m.reconcileAll({ boot: true });
  assert.deepEqual(host.calls, ["start a/young file:///log"]);
  await m.close();
});

Deno.test("RestartMonitor: on-failure:2 starts a failing task twice, then leaves it stopped", async () => {
  let now = 1_000_000;
  const host = new FakeHost();
  host.add("a", "f", { [L.status]: "running", [L.policy]: "on-failure:2" }, {
    status: "stopped",
    exitStatus: 1,
  });
  const m = new RestartMonitor(host, { log: quiet, clock: () => now, backoffMs: 0 });
  for (let i = 0; i < 4; i++) {
    await m.reconcileOne("a", "f");
    host.exit("a", "f", 1);
    now += 20_000;
  }
  assert.deepEqual(host.calls.filter((c) => c.startsWith("start")).length, 2);
  assert.equal(host.labels("a", "f")[L.count], "2");
  await m.close();
});

Deno.test("RestartMonitor.taskExited() restarts at once, then backs off a task that keeps failing", async () => {
  let now = 1_000_000;
  const host = new FakeHost();
  host.add("a", "c", always, { status: "stopped", exitStatus: 1 });
  const m = new RestartMonitor(host, { log: quiet, clock: () => now, backoffMs: 100, intervalMs: 60_000 });
  await m.reconcileOne("a", "c");
  assert.equal(host.calls.filter((c) => c.startsWith("start")).length, 1);
  // It fails 10 ms later: the next start waits for the 100 ms back-off (a timer, then the start).
  now += 10;
  host.exit("a", "c", 1);
  await m.reconcileOne("a", "c");
  assert.equal(host.calls.filter((c) => c.startsWith("start")).length, 1);
  now += 90;
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(host.calls.filter((c) => c.startsWith("start")).length, 2);
  // After a long run it starts again without a delay.
  now += 20_000;
  host.exit("a", "c", 1);
  await m.reconcileOne("a", "c");
  assert.equal(host.calls.filter((c) => c.startsWith("start")).length, 3);
  await m.close();
});

Deno.test("RestartMonitor: a second request during a reconcile runs once more after it", async () => {
  const host = new FakeHost();
  host.add("a", "c", always, { status: "stopped", exitStatus: 1 });
  const m = new RestartMonitor(host, { log: quiet, backoffMs: 0, backoffResetMs: 0 });
  host.crashOnStart = 2;
  const first = m.reconcileOne("a", "c");
  // The new task's exit is told while the first reconcile is still under way: one more pass, not two.
  const second = m.reconcileOne("a", "c");
  const third = m.reconcileOne("a", "c");
  await Promise.all([first, second, third]);
  assert.equal(host.calls.filter((c) => c.startsWith("start")).length, 2);
  await m.close();
});

Deno.test("RestartMonitor: a failed start is logged and tried again on the next pass; close() ends the loop", async () => {
  const host = new FakeHost();
  host.failStart = true;
  host.add("a", "c", always, { status: "stopped", exitStatus: 1 });
  const warnings: string[] = [];
  const log = { ...quiet, warn: (msg: string) => void warnings.push(msg) };
  const m = new RestartMonitor(host, { log, intervalMs: 20, backoffMs: 0, backoffResetMs: 0 });
  m.start();
  await new Promise((r) => setTimeout(r, 30));
  assert.ok(warnings.includes("cannot reconcile container"), String(warnings));
  host.failStart = false;
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(host.calls.filter((c) => c.startsWith("start")).length, 1);
  await m.close();
  assert.deepEqual(host.tasks.get("a/c"), { status: "running", exitStatus: 0 });
});
