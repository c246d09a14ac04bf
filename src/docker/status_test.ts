import assert from "node:assert/strict";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Status } from "../gen/types/task/task_pb.ts";
import {
  describeStatus,
  formatPorts,
  humanDuration,
  portsOf,
  processStartTime,
  stateOf,
  statFields,
  timeAgo,
} from "./status.ts";

const now = new Date("2025-03-01T12:00:00Z");
const ago = (ms: number) => new Date(now.getTime() - ms);
const task = (status: Status, extra: { pid?: number; exitStatus?: number; exitedAt?: Date } = {}) => ({
  pid: extra.pid ?? 0,
  status,
  exitStatus: extra.exitStatus ?? 0,
  exitedAt: extra.exitedAt ? timestampFromDate(extra.exitedAt) : undefined,
});

Deno.test("humanDuration() words durations as Docker's go-units does", () => {
  const cases: [number, string][] = [
    [0, "Less than a second"],
    [999, "Less than a second"],
    [1000, "1 second"],
    [59_999, "59 seconds"],
    [60_000, "About a minute"],
    [119_999, "About a minute"],
    [120_000, "2 minutes"],
    [59 * 60_000, "59 minutes"],
    [60 * 60_000, "About an hour"],
    [90 * 60_000, "2 hours"],
    [47 * 3_600_000, "47 hours"],
    [48 * 3_600_000, "2 days"],
    [14 * 24 * 3_600_000, "2 weeks"],
    [60 * 24 * 3_600_000, "2 months"],
    [3 * 365 * 24 * 3_600_000, "3 years"],
  ];
  for (const [ms, text] of cases) assert.equal(humanDuration(ms), text, `${ms} ms`);
  assert.equal(timeAgo(ago(5000), now), "5 seconds ago");
});

Deno.test("stateOf() maps a running, paused and stopped task to Docker's states", () => {
  const started = ago(3000);
  const running = stateOf({}, task(Status.RUNNING, { pid: 42 }), (pid) => pid === 42 ? started : undefined);
  assert.deepEqual(running, {
    status: "running",
    running: true,
    paused: false,
    pid: 42,
    exitCode: 0,
    startedAt: started,
  });
  assert.equal(describeStatus(running, now), "Up 3 seconds");

  const paused = stateOf({}, task(Status.PAUSED, { pid: 42 }), () => ago(150_000));
  assert.equal(paused.status, "paused");
  assert.ok(paused.running && paused.paused);
  assert.equal(describeStatus(paused, now), "Up 2 minutes (Paused)");

  const stopped = stateOf({}, task(Status.STOPPED, { pid: 42, exitStatus: 137, exitedAt: ago(5000) }));
  assert.equal(stopped.status, "exited");
  assert.equal(stopped.pid, 0);
  assert.equal(stopped.exitCode, 137);
  assert.equal(describeStatus(stopped, now), "Exited (137) 5 seconds ago");
});

Deno.test("stateOf() without a task reads the exit recorded by stop/rm, else says created", () => {
  const recorded = stateOf(
    { "berth/exit-code": "143", "berth/finished-at": ago(120_000).toISOString() },
    undefined,
  );
  assert.equal(recorded.status, "exited");
  assert.equal(recorded.exitCode, 143);
  assert.equal(describeStatus(recorded, now), "Exited (143) 2 minutes ago");

  const created = stateOf({}, undefined);
  assert.equal(created.status, "created");
  assert.equal(describeStatus(created, now), "Created");
  // A task made but not started is Docker's "created" too.
  assert.equal(stateOf({}, task(Status.CREATED, { pid: 7 })).status, "created");
});

Deno.test("formatPorts() writes nerdctl/ports as Docker's PORTS column", () => {
  const labels = {
    "nerdctl/ports": JSON.stringify([
      { HostPort: 18080, ContainerPort: 80, Protocol: "tcp", HostIP: "0.0.0.0" },
      { HostPort: 5353, ContainerPort: 53, Protocol: "udp", HostIP: "127.0.0.1" },
      { HostPort: 9000, ContainerPort: 9000, Protocol: "tcp", HostIP: "::" },
    ]),
  };
  assert.equal(
    formatPorts(labels),
    "0.0.0.0:18080->80/tcp, 127.0.0.1:5353->53/udp, [::]:9000->9000/tcp",
  );
  assert.equal(formatPorts({}), "");
  assert.equal(formatPorts({ "nerdctl/ports": "not json" }), "");
  assert.deepEqual(portsOf({ "nerdctl/ports": '[{"HostPort":1,"ContainerPort":2}]' }), [
    { HostPort: 1, ContainerPort: 2, Protocol: "tcp", HostIP: "0.0.0.0" },
  ]);
});

Deno.test("processStartTime() reads this process's start from /proc", () => {
  const started = processStartTime(Deno.pid);
  assert.ok(started);
  const age = Date.now() - started.getTime();
  assert.ok(age >= -1000 && age < 10 * 60_000, `started ${age} ms ago`);
  assert.equal(processStartTime(2 ** 30), undefined);
  assert.deepEqual(statFields("12 (a b) c) S 1 2").slice(0, 3), ["S", "1", "2"]);
});
