/**
 * `runc events --stats` data turned into containerd's cgroup metrics messages, packed in an Any the way
 * containerd's shim does: `io.containerd.cgroups.v1.Metrics` on cgroup v1 (and hybrid) hosts,
 * `io.containerd.cgroups.v2.Metrics` on unified ones. ctr and the CRI plugin decode these type names.
 */

import { create } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import { packBare } from "./events.ts";
import * as v1 from "../gen/cgroups/v1/metrics_pb.ts";
import * as v2 from "../gen/cgroups/v2/metrics_pb.ts";
import type { RuncStats } from "./runc.ts";

export type { CgroupMode } from "./cgroup_mode.ts";
import type { CgroupMode } from "./cgroup_mode.ts";

type Json = Record<string, unknown>;

function obj(v: unknown): Json {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? v as Json : {};
}

const MAX_U64 = 0xffff_ffff_ffff_ffffn;

/**
 * A uint64 from JSON, which has lost precision above 2^53: close enough for metrics, except that
 * runc's "no limit" (MaxUint64) parses as 2^64 and must stay a valid uint64.
 */
function u64(v: unknown): bigint {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) return 0n;
  const n = BigInt(Math.round(v));
  return n > MAX_U64 ? MAX_U64 : n;
}

/** The first of several spellings runc has used for a field. */
function pick(o: Json, ...names: string[]): unknown {
  for (const n of names) if (o[n] !== undefined) return o[n];
  return undefined;
}

function entries(list: unknown): v1.BlkIOEntry[] {
  if (!Array.isArray(list)) return [];
  return list.map((e) => {
    const o = obj(e);
    return create(v1.BlkIOEntrySchema, {
      op: typeof o.op === "string" ? o.op : "",
      major: u64(o.major),
      minor: u64(o.minor),
      value: u64(o.value),
    });
  });
}

function memoryEntry(v: unknown): v1.MemoryEntry {
  const o = obj(v);
  return create(v1.MemoryEntrySchema, {
    limit: u64(o.limit),
    usage: u64(o.usage),
    max: u64(o.max),
    failcnt: u64(o.failcnt),
  });
}

export function toV1Metrics(stats: RuncStats): v1.Metrics {
  const s = stats as Json;
  const cpu = obj(s.cpu);
  const usage = obj(cpu.usage);
  const thr = obj(cpu.throttling);
  const mem = obj(s.memory);
  const raw = obj(mem.raw);
  const r = (k: string) => u64(raw[k]);
  const blk = obj(s.blkio);
  const pids = obj(s.pids);
  return create(v1.MetricsSchema, {
    hugetlb: Object.entries(obj(s.hugetlb)).map(([pagesize, h]) => {
      const o = obj(h);
      return create(v1.HugetlbStatSchema, {
        pagesize,
        usage: u64(o.usage),
        max: u64(o.max),
        failcnt: u64(o.failcnt),
      });
    }),
    pids: create(v1.PidsStatSchema, { current: u64(pids.current), limit: u64(pids.limit) }),
    cpu: create(v1.CPUStatSchema, {
      usage: create(v1.CPUUsageSchema, {
        total: u64(usage.total),
        kernel: u64(usage.kernel),
        user: u64(usage.user),
        perCpu: Array.isArray(usage.percpu) ? usage.percpu.map(u64) : [],
      }),
      throttling: create(v1.ThrottleSchema, {
        periods: u64(thr.periods),
        throttledPeriods: u64(pick(thr, "throttledPeriods", "throttled_periods")),
        throttledTime: u64(pick(thr, "throttledTime", "throttled_time")),
      }),
    }),
    memory: create(v1.MemoryStatSchema, {
      cache: r("cache"),
      rss: r("rss"),
      rssHuge: r("rss_huge"),
      mappedFile: r("mapped_file"),
      dirty: r("dirty"),
      writeback: r("writeback"),
      pgPgIn: r("pgpgin"),
      pgPgOut: r("pgpgout"),
      pgFault: r("pgfault"),
      pgMajFault: r("pgmajfault"),
      inactiveAnon: r("inactive_anon"),
      activeAnon: r("active_anon"),
      inactiveFile: r("inactive_file"),
      activeFile: r("active_file"),
      unevictable: r("unevictable"),
      hierarchicalMemoryLimit: r("hierarchical_memory_limit"),
      hierarchicalSwapLimit: r("hierarchical_memsw_limit"),
      totalCache: r("total_cache"),
      totalRss: r("total_rss"),
      totalRssHuge: r("total_rss_huge"),
      totalMappedFile: r("total_mapped_file"),
      totalDirty: r("total_dirty"),
      totalWriteback: r("total_writeback"),
      totalPgPgIn: r("total_pgpgin"),
      totalPgPgOut: r("total_pgpgout"),
      totalPgFault: r("total_pgfault"),
      totalPgMajFault: r("total_pgmajfault"),
      totalInactiveAnon: r("total_inactive_anon"),
      totalActiveAnon: r("total_active_anon"),
      totalInactiveFile: r("total_inactive_file"),
      totalActiveFile: r("total_active_file"),
      totalUnevictable: r("total_unevictable"),
      usage: memoryEntry(mem.usage),
      swap: memoryEntry(mem.swap),
      kernel: memoryEntry(mem.kernel),
      kernelTcp: memoryEntry(pick(mem, "kernelTCP", "kernel_tcp")),
    }),
    blkio: create(v1.BlkIOStatSchema, {
      ioServiceBytesRecursive: entries(blk.ioServiceBytesRecursive),
      ioServicedRecursive: entries(blk.ioServicedRecursive),
      ioQueuedRecursive: entries(pick(blk, "ioQueueRecursive", "ioQueuedRecursive")),
      ioServiceTimeRecursive: entries(blk.ioServiceTimeRecursive),
      ioWaitTimeRecursive: entries(blk.ioWaitTimeRecursive),
      ioMergedRecursive: entries(blk.ioMergedRecursive),
      ioTimeRecursive: entries(blk.ioTimeRecursive),
      sectorsRecursive: entries(blk.sectorsRecursive),
    }),
  });
}

export function toV2Metrics(stats: RuncStats): v2.Metrics {
  const s = stats as Json;
  const cpu = obj(s.cpu);
  const usage = obj(cpu.usage);
  const thr = obj(cpu.throttling);
  const mem = obj(s.memory);
  const raw = obj(mem.raw);
  const r = (k: string) => u64(raw[k]);
  const memUsage = obj(mem.usage);
  const swap = obj(mem.swap);
  const pids = obj(s.pids);
  // runc reports cgroup v2 CPU times in nanoseconds; containerd's v2 metrics carry microseconds.
  const usec = (v: unknown) => u64(v) / 1000n;
  // runc adds memory to swap on v2 (v1's memsw view); containerd reports memory.swap.* alone.
  const memory = u64(memUsage.usage);
  const limit = u64(memUsage.limit);
  const swapUsage = u64(swap.usage) - memory;
  const swapLimit = u64(swap.limit);
  const blk = obj(s.blkio);
  return create(v2.MetricsSchema, {
    hugetlb: Object.entries(obj(s.hugetlb)).map(([pagesize, h]) =>
      create(v2.HugeTlbStatSchema, { pagesize, current: u64(obj(h).usage), max: u64(obj(h).max) })
    ),
    io: create(v2.IOStatSchema, { usage: ioEntries(blk) }),
    pids: create(v2.PidsStatSchema, { current: u64(pids.current), limit: u64(pids.limit) }),
    cpu: create(v2.CPUStatSchema, {
      usageUsec: usec(usage.total),
      userUsec: usec(usage.user),
      systemUsec: usec(usage.kernel),
      nrPeriods: u64(thr.periods),
      nrThrottled: u64(pick(thr, "throttledPeriods", "throttled_periods")),
      throttledUsec: usec(pick(thr, "throttledTime", "throttled_time")),
    }),
    memory: create(v2.MemoryStatSchema, {
      anon: r("anon"),
      file: r("file"),
      kernelStack: r("kernel_stack"),
      slab: r("slab"),
      sock: r("sock"),
      shmem: r("shmem"),
      fileMapped: r("file_mapped"),
      fileDirty: r("file_dirty"),
      fileWriteback: r("file_writeback"),
      anonThp: r("anon_thp"),
      inactiveAnon: r("inactive_anon"),
      activeAnon: r("active_anon"),
      inactiveFile: r("inactive_file"),
      activeFile: r("active_file"),
      unevictable: r("unevictable"),
      slabReclaimable: r("slab_reclaimable"),
      slabUnreclaimable: r("slab_unreclaimable"),
      pgfault: r("pgfault"),
      pgmajfault: r("pgmajfault"),
      workingsetNodereclaim: r("workingset_nodereclaim"),
      pgrefill: r("pgrefill"),
      pgscan: r("pgscan"),
      pgsteal: r("pgsteal"),
      pgactivate: r("pgactivate"),
      pgdeactivate: r("pgdeactivate"),
      pglazyfree: r("pglazyfree"),
      pglazyfreed: r("pglazyfreed"),
      thpFaultAlloc: r("thp_fault_alloc"),
      thpCollapseAlloc: r("thp_collapse_alloc"),
      workingsetRefault: r("workingset_refault"),
      workingsetActivate: r("workingset_activate"),
      workingsetRefaultAnon: r("workingset_refault_anon"),
      workingsetRefaultFile: r("workingset_refault_file"),
      workingsetActivateAnon: r("workingset_activate_anon"),
      workingsetActivateFile: r("workingset_activate_file"),
      usage: memory,
      usageLimit: limit,
      maxUsage: u64(memUsage.max),
      swapUsage: swapUsage > 0n ? swapUsage : 0n,
      swapLimit: v2SwapLimit(swapLimit, limit),
      swapMaxUsage: u64(swap.max),
    }),
  });
}

/**
 * memory.swap.max from runc's combined limit: runc adds memory.max to a finite swap limit with Go's
 * wrapping uint64 arithmetic, so an unlimited memory.max leaves the swap limit one lower.
 */
function v2SwapLimit(combined: bigint, memory: bigint): bigint {
  if (combined === MAX_U64) return MAX_U64;
  if (memory === MAX_U64) return combined + 1n;
  return combined >= memory ? combined - memory : 0n;
}

/**
 * runc's v2 io.stat, split into v1-style tables (bytes and ios, Read and Write), joined back into
 * containerd's one entry per device.
 */
function ioEntries(blk: Json): v2.IOEntry[] {
  const byDevice = new Map<string, v2.IOEntry>();
  const add = (list: unknown, read: "rbytes" | "rios", write: "wbytes" | "wios") => {
    if (!Array.isArray(list)) return;
    for (const e of list) {
      const o = obj(e);
      const key = `${u64(o.major)}:${u64(o.minor)}`;
      let entry = byDevice.get(key);
      if (!entry) {
        entry = create(v2.IOEntrySchema, { major: u64(o.major), minor: u64(o.minor) });
        byDevice.set(key, entry);
      }
      if (o.op === "Read") entry[read] += u64(o.value);
      else if (o.op === "Write") entry[write] += u64(o.value);
    }
  };
  add(blk.ioServiceBytesRecursive, "rbytes", "wbytes");
  add(blk.ioServicedRecursive, "rios", "wios");
  return [...byDevice.values()];
}

/** The stats in an Any with containerd's bare type name. */
export function packMetrics(stats: RuncStats, mode: CgroupMode): Any {
  return mode === "v2"
    ? packBare(v2.MetricsSchema, toV2Metrics(stats))
    : packBare(v1.MetricsSchema, toV1Metrics(stats));
}
