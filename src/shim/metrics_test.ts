import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import * as v1 from "../gen/cgroups/v1/metrics_pb.ts";
import * as v2 from "../gen/cgroups/v2/metrics_pb.ts";
import { packMetrics } from "./metrics.ts";
import type { RuncStats } from "./runc.ts";

const MAX_U64 = 18446744073709551615n;

/**
 * `runc events --stats <id>` as runc 1.1 prints it on a cgroup v2 host (fields and units from runc's
 * types/events.go and libcontainer/cgroups/fs2: CPU times in ns, `max` limits as MaxUint64, swap with
 * memory added, io.stat split into Read/Write tables, hugetlb by page size). A recorded sample: this
 * host is hybrid (v1 controllers; its cgroup2 mount has hugetlb only), so runc cannot produce it here.
 */
const V2_EVENT = `{"type":"stats","id":"c1","data":{"cpu":{"usage":{"total":23456000,"kernel":11456000,
"user":12000000},"throttling":{"periods":40,"throttledPeriods":3,"throttledTime":5000000}},"cpuset":{"cpus":[0,1],
"cpu_exclusive":0,"mems":[0],"mem_hardwall":0,"mem_exclusive":0,"memory_migrate":0,"memory_spread_page":0,
"memory_spread_slab":0,"memory_pressure":0,"sched_load_balance":0,"sched_relax_domain_level":0},"memory":{
"cache":4096,"usage":{"limit":18446744073709551615,"usage":1490944,"failcnt":0},"swap":{"limit":18446744073709551615,
"usage":1490944,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0},"raw":{
"active_anon":4096,"active_file":0,"anon":393216,"anon_thp":0,"file":4096,"file_dirty":0,"file_mapped":0,
"file_writeback":0,"inactive_anon":389120,"inactive_file":4096,"kernel_stack":32768,"pgactivate":0,
"pgdeactivate":0,"pgfault":1234,"pglazyfree":0,"pglazyfreed":0,"pgmajfault":2,"pgrefill":0,"pgscan":0,
"pgsteal":0,"shmem":0,"slab":217088,"slab_reclaimable":90112,"slab_unreclaimable":126976,"sock":0,
"thp_collapse_alloc":0,"thp_fault_alloc":0,"unevictable":0,"workingset_activate_anon":0,
"workingset_activate_file":0,"workingset_nodereclaim":0,"workingset_refault_anon":0,"workingset_refault_file":7}},
"pids":{"current":3},"blkio":{"ioServiceBytesRecursive":[{"major":8,"minor":0,"op":"Read","value":4096},
{"major":8,"minor":0,"op":"Write","value":12288}],"ioServicedRecursive":[{"major":8,"minor":0,"op":"Read",
"value":1},{"major":8,"minor":0,"op":"Write","value":3}]},"hugetlb":{"1GB":{"failcnt":0},"2MB":{"usage":2097152,
"failcnt":0}},"intel_rdt":{},"network_interfaces":null}}`;

interface Sample {
  memory: { usage: Record<string, number>; swap: Record<string, number> };
}

function sample(edit?: (s: Sample) => void): RuncStats {
  const ev = JSON.parse(V2_EVENT) as { data: Sample };
  edit?.(ev.data);
  return ev.data as unknown as RuncStats;
}

Deno.test("packMetrics() turns a cgroup v2 runc sample into io.containerd.cgroups.v2.Metrics", () => {
  const any = packMetrics(sample(), "v2");
  assert.equal(any.typeUrl, "io.containerd.cgroups.v2.Metrics");
  const m = fromBinary(v2.MetricsSchema, any.value);
  assert.equal(m.pids?.current, 3n);
  assert.equal(m.pids?.limit, 0n);
  assert.equal(m.cpu?.usageUsec, 23456n);
  assert.equal(m.cpu?.userUsec, 12000n);
  assert.equal(m.cpu?.systemUsec, 11456n);
  assert.equal(m.cpu?.nrPeriods, 40n);
  assert.equal(m.cpu?.nrThrottled, 3n);
  assert.equal(m.cpu?.throttledUsec, 5000n);
  assert.equal(m.memory?.anon, 393216n);
  assert.equal(m.memory?.file, 4096n);
  assert.equal(m.memory?.kernelStack, 32768n);
  assert.equal(m.memory?.slabUnreclaimable, 126976n);
  assert.equal(m.memory?.pgfault, 1234n);
  assert.equal(m.memory?.workingsetRefaultFile, 7n);
  assert.equal(m.memory?.usage, 1490944n);
  // memory.max and memory.swap.max are "max": runc's MaxUint64 must survive JSON as a valid uint64.
  assert.equal(m.memory?.usageLimit, MAX_U64);
  assert.equal(m.memory?.swapLimit, MAX_U64);
  // runc reports swap as swap + memory; memory.swap.current alone is 0.
  assert.equal(m.memory?.swapUsage, 0n);
  assert.deepEqual(
    m.io?.usage.map((e) => [e.major, e.minor, e.rbytes, e.wbytes, e.rios, e.wios]),
    [[8n, 0n, 4096n, 12288n, 1n, 3n]],
  );
  assert.deepEqual(m.hugetlb.map((h) => [h.pagesize, h.current]).sort(), [["1GB", 0n], ["2MB", 2097152n]]);
});

Deno.test("packMetrics() recovers memory.swap.* from runc's v2 mem+swap figures", () => {
  const m = fromBinary(
    v2.MetricsSchema,
    packMetrics(
      sample((d) => {
        // memory.max 10 MiB, memory.swap.max 4 MiB, memory.swap.current 1 MiB.
        d.memory.usage = { limit: 10485760, usage: 2097152, failcnt: 0 };
        d.memory.swap = { limit: 10485760 + 4194304, usage: 2097152 + 1048576, failcnt: 0 };
      }),
      "v2",
    ).value,
  );
  assert.equal(m.memory?.usageLimit, 10485760n);
  assert.equal(m.memory?.swapLimit, 4194304n);
  assert.equal(m.memory?.swapUsage, 1048576n);
});

Deno.test("packMetrics() in v1 mode keeps an unlimited value a valid uint64", () => {
  const any = packMetrics(
    { memory: { usage: { usage: 1, limit: 18446744073709551615 } }, pids: { current: 2 } },
    "v1",
  );
  assert.equal(any.typeUrl, "io.containerd.cgroups.v1.Metrics");
  const m = fromBinary(v1.MetricsSchema, any.value);
  assert.equal(m.memory?.usage?.limit, MAX_U64);
  assert.equal(m.pids?.current, 2n);
});
