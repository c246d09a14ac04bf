import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import * as v1 from "../gen/cgroups/v1/metrics_pb.ts";
import * as v2 from "../gen/cgroups/v2/metrics_pb.ts";
import { bytesSize, cpuPercent, decodeMetrics, humanSize, parseNetDev, sampleOf, statsRow } from "./stats.ts";

Deno.test("sampleOf() reads cgroup v1 metrics as docker counts them (cache out of usage)", () => {
  const m = create(v1.MetricsSchema, {
    cpu: { usage: { total: 2_500_000_000n } },
    memory: { usage: { usage: 10n << 20n, limit: 9223372036854771712n }, totalInactiveFile: 2n << 20n },
    pids: { current: 3n },
    blkio: {
      ioServiceBytesRecursive: [
        { op: "Read", value: 4096n, major: 8n },
        { op: "Write", value: 1000n, major: 8n },
        { op: "Total", value: 5096n, major: 8n },
      ],
    },
  });
  const s = sampleOf(decodeMetrics("io.containerd.cgroups.v1.Metrics", toBinary(v1.MetricsSchema, m)));
  assert.deepEqual(s, {
    cpuNs: 2_500_000_000,
    memUsage: 8 << 20,
    memLimit: 0,
    blockRead: 4096,
    blockWrite: 1000,
    pids: 3,
  });
});

Deno.test("sampleOf() reads cgroup v2 metrics", () => {
  const m = create(v2.MetricsSchema, {
    cpu: { usageUsec: 1500n },
    memory: { usage: 5000n, usageLimit: 32n << 20n, inactiveFile: 1000n },
    pids: { current: 1n },
    io: { usage: [{ rbytes: 10n, wbytes: 20n }, { rbytes: 1n, wbytes: 2n }] },
  });
  const s = sampleOf(
    decodeMetrics("types.containerd.io/io.containerd.cgroups.v2.Metrics", toBinary(v2.MetricsSchema, m)),
  );
  assert.deepEqual(s, {
    cpuNs: 1_500_000,
    memUsage: 4000,
    memLimit: 32 << 20,
    blockRead: 11,
    blockWrite: 22,
    pids: 1,
  });
  assert.throws(() => decodeMetrics("x.Other", new Uint8Array()), /not cgroups v1 or v2/);
});

Deno.test("stats numbers print as docker's: binary memory, decimal I/O, two-decimal percents", () => {
  assert.equal(bytesSize(0), "0B");
  assert.equal(bytesSize(1536), "1.5KiB");
  assert.equal(bytesSize(1503238), "1.434MiB");
  assert.equal(bytesSize(8 * 2 ** 30), "8GiB");
  assert.equal(humanSize(1050), "1.05kB");
  assert.equal(humanSize(999), "999B");
  assert.equal(humanSize(12_345_678), "12.3MB");
  const base = { cpuNs: 0, memUsage: 0, memLimit: 0, blockRead: 0, blockWrite: 0, pids: 1 };
  assert.equal(cpuPercent(base, { ...base, cpuNs: 250_000_000 }, 1e9), 25);
  assert.equal(cpuPercent(undefined, base, 1e9), 0);
  const row = statsRow({
    id: "abc",
    name: "web",
    sample: { ...base, memUsage: 1 << 20, memLimit: 4 << 20 },
    cpuPercent: 12.345,
    net: { rx: 1050, tx: 0 },
    hostMemory: 8 * 2 ** 30,
  });
  assert.deepEqual(row, {
    ID: "abc",
    Name: "web",
    CPUPerc: "12.35%",
    MemUsage: "1MiB / 4MiB",
    MemPerc: "25.00%",
    NetIO: "1.05kB / 0B",
    BlockIO: "0B / 0B",
    PIDs: "1",
    Container: "web",
  });
  // No limit: the host's memory, as docker shows it. No task: zeros.
  assert.equal(statsRow({ id: "a", name: "a", sample: base, hostMemory: 2 ** 30 }).MemUsage, "0B / 1GiB");
  assert.equal(statsRow({ id: "a", name: "a", hostMemory: 2 ** 30 }).MemUsage, "0B / 0B");
});

Deno.test("parseNetDev() adds up every interface but loopback", () => {
  const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0:    2048      20    0    0    0     0          0         0      512       5    0    0    0     0       0          0
  eth1:       2       1    0    0    0     0          0         0        1       1    0    0    0     0       0          0
`;
  assert.deepEqual(parseNetDev(text), { rx: 2050, tx: 513 });
});
