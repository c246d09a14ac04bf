/**
 * containerd 1.6's per-task cgroup metrics (metrics/cgroups/v1 and v2), as facts: the same names, help
 * texts, units and labels. containerd registers them under the namespace "container", so a metric
 * `memory_usage_usage` of unit bytes is served as `container_memory_usage_usage_bytes`, and labels every
 * series with `container_id` and `namespace`. Which table applies follows the task's own metrics message
 * (io.containerd.cgroups.v1.Metrics or v2), as containerd's follows the host's cgroup mode. Every
 * containerd series is a gauge except v1's OOM counter.
 */
import { fromBinary } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import * as v1 from "../../gen/cgroups/v1/metrics_pb.ts";
import * as v2 from "../../gen/cgroups/v2/metrics_pb.ts";
import type { Family, MetricType } from "./exposition.ts";

/** A one-value metric: name, help, unit, the part of the message it needs, and the value. */
type Def<M> = readonly [string, string, string, keyof M, (m: M) => bigint | undefined];

// Transcribed from containerd v1.6.20 metrics/cgroups/v1/{pids,cpu,memory}.go.
const V1: readonly Def<v1.Metrics>[] = [
  ["pids", "The limit to the number of pids allowed", "limit", "pids", (m) => m.pids?.limit],
  ["pids", "The current number of pids", "current", "pids", (m) => m.pids?.current],
  ["cpu_total", "The total cpu time", "nanoseconds", "cpu", (m) => m.cpu?.usage?.total],
  ["cpu_kernel", "The total kernel cpu time", "nanoseconds", "cpu", (m) => m.cpu?.usage?.kernel],
  ["cpu_user", "The total user cpu time", "nanoseconds", "cpu", (m) => m.cpu?.usage?.user],
  [
    "cpu_throttle_periods",
    "The total cpu throttle periods",
    "total",
    "cpu",
    (m) => m.cpu?.throttling?.periods,
  ],
  [
    "cpu_throttled_periods",
    "The total cpu throttled periods",
    "total",
    "cpu",
    (m) => m.cpu?.throttling?.throttledPeriods,
  ],
  [
    "cpu_throttled_time",
    "The total cpu throttled time",
    "nanoseconds",
    "cpu",
    (m) => m.cpu?.throttling?.throttledTime,
  ],
  ["memory_cache", "The cache amount used", "bytes", "memory", (m) => m.memory?.cache],
  ["memory_rss", "The rss amount used", "bytes", "memory", (m) => m.memory?.rss],
  ["memory_rss_huge", "The rss_huge amount used", "bytes", "memory", (m) => m.memory?.rssHuge],
  ["memory_mapped_file", "The mapped_file amount used", "bytes", "memory", (m) => m.memory?.mappedFile],
  ["memory_dirty", "The dirty amount", "bytes", "memory", (m) => m.memory?.dirty],
  ["memory_writeback", "The writeback amount", "bytes", "memory", (m) => m.memory?.writeback],
  ["memory_pgpgin", "The pgpgin amount", "bytes", "memory", (m) => m.memory?.pgPgIn],
  ["memory_pgpgout", "The pgpgout amount", "bytes", "memory", (m) => m.memory?.pgPgOut],
  ["memory_pgfault", "The pgfault amount", "bytes", "memory", (m) => m.memory?.pgFault],
  ["memory_pgmajfault", "The pgmajfault amount", "bytes", "memory", (m) => m.memory?.pgMajFault],
  ["memory_inactive_anon", "The inactive_anon amount", "bytes", "memory", (m) => m.memory?.inactiveAnon],
  ["memory_active_anon", "The active_anon amount", "bytes", "memory", (m) => m.memory?.activeAnon],
  ["memory_inactive_file", "The inactive_file amount", "bytes", "memory", (m) => m.memory?.inactiveFile],
  ["memory_active_file", "The active_file amount", "bytes", "memory", (m) => m.memory?.activeFile],
  ["memory_unevictable", "The unevictable amount", "bytes", "memory", (m) => m.memory?.unevictable],
  [
    "memory_hierarchical_memory_limit",
    "The hierarchical_memory_limit amount",
    "bytes",
    "memory",
    (m) => m.memory?.hierarchicalMemoryLimit,
  ],
  [
    "memory_hierarchical_memsw_limit",
    "The hierarchical_memsw_limit amount",
    "bytes",
    "memory",
    (m) => m.memory?.hierarchicalSwapLimit,
  ],
  ["memory_total_cache", "The total_cache amount used", "bytes", "memory", (m) => m.memory?.totalCache],
  ["memory_total_rss", "The total_rss amount used", "bytes", "memory", (m) => m.memory?.totalRss],
  [
    "memory_total_rss_huge",
    "The total_rss_huge amount used",
    "bytes",
    "memory",
    (m) => m.memory?.totalRssHuge,
  ],
  [
    "memory_total_mapped_file",
    "The total_mapped_file amount used",
    "bytes",
    "memory",
    (m) => m.memory?.totalMappedFile,
  ],
  ["memory_total_dirty", "The total_dirty amount", "bytes", "memory", (m) => m.memory?.totalDirty],
  [
    "memory_total_writeback",
    "The total_writeback amount",
    "bytes",
    "memory",
    (m) => m.memory?.totalWriteback,
  ],
  ["memory_total_pgpgin", "The total_pgpgin amount", "bytes", "memory", (m) => m.memory?.totalPgPgIn],
  ["memory_total_pgpgout", "The total_pgpgout amount", "bytes", "memory", (m) => m.memory?.totalPgPgOut],
  ["memory_total_pgfault", "The total_pgfault amount", "bytes", "memory", (m) => m.memory?.totalPgFault],
  [
    "memory_total_pgmajfault",
    "The total_pgmajfault amount",
    "bytes",
    "memory",
    (m) => m.memory?.totalPgMajFault,
  ],
  [
    "memory_total_inactive_anon",
    "The total_inactive_anon amount",
    "bytes",
    "memory",
    (m) => m.memory?.totalInactiveAnon,
  ],
  [
    "memory_total_active_anon",
    "The total_active_anon amount",
    "bytes",
    "memory",
    (m) => m.memory?.totalActiveAnon,
  ],
  [
    "memory_total_inactive_file",
    "The total_inactive_file amount",
    "bytes",
    "memory",
    (m) => m.memory?.totalInactiveFile,
  ],
  [
    "memory_total_active_file",
    "The total_active_file amount",
    "bytes",
    "memory",
    (m) => m.memory?.totalActiveFile,
  ],
  [
    "memory_total_unevictable",
    "The total_unevictable amount",
    "bytes",
    "memory",
    (m) => m.memory?.totalUnevictable,
  ],
  ["memory_usage_failcnt", "The usage failcnt", "total", "memory", (m) => m.memory?.usage?.failcnt],
  ["memory_usage_limit", "The memory limit", "bytes", "memory", (m) => m.memory?.usage?.limit],
  ["memory_usage_max", "The memory maximum usage", "bytes", "memory", (m) => m.memory?.usage?.max],
  ["memory_usage_usage", "The memory usage", "bytes", "memory", (m) => m.memory?.usage?.usage],
  ["memory_swap_failcnt", "The swap failcnt", "total", "memory", (m) => m.memory?.swap?.failcnt],
  ["memory_swap_limit", "The swap limit", "bytes", "memory", (m) => m.memory?.swap?.limit],
  ["memory_swap_max", "The swap maximum usage", "bytes", "memory", (m) => m.memory?.swap?.max],
  ["memory_swap_usage", "The swap usage", "bytes", "memory", (m) => m.memory?.swap?.usage],
  ["memory_kernel_failcnt", "The kernel failcnt", "total", "memory", (m) => m.memory?.kernel?.failcnt],
  ["memory_kernel_limit", "The kernel limit", "bytes", "memory", (m) => m.memory?.kernel?.limit],
  ["memory_kernel_max", "The kernel maximum usage", "bytes", "memory", (m) => m.memory?.kernel?.max],
  ["memory_kernel_usage", "The kernel usage", "bytes", "memory", (m) => m.memory?.kernel?.usage],
  [
    "memory_kerneltcp_failcnt",
    "The kerneltcp failcnt",
    "total",
    "memory",
    (m) => m.memory?.kernelTcp?.failcnt,
  ],
  ["memory_kerneltcp_limit", "The kerneltcp limit", "bytes", "memory", (m) => m.memory?.kernelTcp?.limit],
  ["memory_kerneltcp_max", "The kerneltcp maximum usage", "bytes", "memory", (m) => m.memory?.kernelTcp?.max],
  ["memory_kerneltcp_usage", "The kerneltcp usage", "bytes", "memory", (m) => m.memory?.kernelTcp?.usage],
];

// Transcribed from containerd v1.6.20 metrics/cgroups/v2/{pids,cpu,memory}.go.
const V2: readonly Def<v2.Metrics>[] = [
  ["pids", "The limit to the number of pids allowed (cgroup v2)", "limit", "pids", (m) => m.pids?.limit],
  ["pids", "The current number of pids (cgroup v2)", "current", "pids", (m) => m.pids?.current],
  ["cpu_usage_usec", "Total cpu usage (cgroup v2)", "microseconds", "cpu", (m) => m.cpu?.usageUsec],
  [
    "cpu_user_usec",
    "Current cpu usage in user space (cgroup v2)",
    "microseconds",
    "cpu",
    (m) => m.cpu?.userUsec,
  ],
  [
    "cpu_system_usec",
    "Current cpu usage in kernel space (cgroup v2)",
    "microseconds",
    "cpu",
    (m) => m.cpu?.systemUsec,
  ],
  [
    "cpu_nr_periods",
    "Current cpu number of periods (only if controller is enabled)",
    "total",
    "cpu",
    (m) => m.cpu?.nrPeriods,
  ],
  [
    "cpu_nr_throttled",
    "Total number of times tasks have been throttled (only if controller is enabled)",
    "total",
    "cpu",
    (m) => m.cpu?.nrThrottled,
  ],
  [
    "cpu_throttled_usec",
    "Total time duration for which tasks have been throttled. (only if controller is enabled)",
    "microseconds",
    "cpu",
    (m) => m.cpu?.throttledUsec,
  ],
  ["memory_usage", "Current memory usage (cgroup v2)", "bytes", "memory", (m) => m.memory?.usage],
  [
    "memory_usage_limit",
    "Current memory usage limit (cgroup v2)",
    "bytes",
    "memory",
    (m) => m.memory?.usageLimit,
  ],
  ["memory_swap_usage", "Current swap usage (cgroup v2)", "bytes", "memory", (m) => m.memory?.swapUsage],
  [
    "memory_swap_limit",
    "Current swap usage limit (cgroup v2)",
    "bytes",
    "memory",
    (m) => m.memory?.swapLimit,
  ],
  ["memory_file_mapped", "The file_mapped amount", "bytes", "memory", (m) => m.memory?.fileMapped],
  ["memory_file_dirty", "The file_dirty amount", "bytes", "memory", (m) => m.memory?.fileDirty],
  ["memory_file_writeback", "The file_writeback amount", "bytes", "memory", (m) => m.memory?.fileWriteback],
  ["memory_pgactivate", "The pgactivate amount", "bytes", "memory", (m) => m.memory?.pgactivate],
  ["memory_pgdeactivate", "The pgdeactivate amount", "bytes", "memory", (m) => m.memory?.pgdeactivate],
  ["memory_pgfault", "The pgfault amount", "bytes", "memory", (m) => m.memory?.pgfault],
  ["memory_pgmajfault", "The pgmajfault amount", "bytes", "memory", (m) => m.memory?.pgmajfault],
  ["memory_pglazyfree", "The pglazyfree amount", "bytes", "memory", (m) => m.memory?.pglazyfree],
  ["memory_pgrefill", "The pgrefill amount", "bytes", "memory", (m) => m.memory?.pgrefill],
  ["memory_pglazyfreed", "The pglazyfreed amount", "bytes", "memory", (m) => m.memory?.pglazyfreed],
  ["memory_pgscan", "The pgscan amount", "bytes", "memory", (m) => m.memory?.pgscan],
  ["memory_pgsteal", "The pgsteal amount", "bytes", "memory", (m) => m.memory?.pgsteal],
  ["memory_inactive_anon", "The inactive_anon amount", "bytes", "memory", (m) => m.memory?.inactiveAnon],
  ["memory_active_anon", "The active_anon amount", "bytes", "memory", (m) => m.memory?.activeAnon],
  ["memory_inactive_file", "The inactive_file amount", "bytes", "memory", (m) => m.memory?.inactiveFile],
  ["memory_active_file", "The active_file amount", "bytes", "memory", (m) => m.memory?.activeFile],
  ["memory_unevictable", "The unevictable amount", "bytes", "memory", (m) => m.memory?.unevictable],
  ["memory_anon", "The anon amount", "bytes", "memory", (m) => m.memory?.anon],
  ["memory_file", "The file amount", "bytes", "memory", (m) => m.memory?.file],
  ["memory_kernel_stack", "The kernel_stack amount", "bytes", "memory", (m) => m.memory?.kernelStack],
  ["memory_slab", "The slab amount", "bytes", "memory", (m) => m.memory?.slab],
  ["memory_sock", "The sock amount", "bytes", "memory", (m) => m.memory?.sock],
  ["memory_shmem", "The shmem amount", "bytes", "memory", (m) => m.memory?.shmem],
  ["memory_anon_thp", "The anon_thp amount", "bytes", "memory", (m) => m.memory?.anonThp],
  [
    "memory_slab_reclaimable",
    "The slab_reclaimable amount",
    "bytes",
    "memory",
    (m) => m.memory?.slabReclaimable,
  ],
  [
    "memory_slab_unreclaimable",
    "The slab_unreclaimable amount",
    "bytes",
    "memory",
    (m) => m.memory?.slabUnreclaimable,
  ],
  [
    "memory_workingset_refault",
    "The workingset_refault amount",
    "bytes",
    "memory",
    (m) => m.memory?.workingsetRefault,
  ],
  [
    "memory_workingset_activate",
    "The workingset_activate amount",
    "bytes",
    "memory",
    (m) => m.memory?.workingsetActivate,
  ],
  [
    "memory_workingset_nodereclaim",
    "The workingset_nodereclaim amount",
    "bytes",
    "memory",
    (m) => m.memory?.workingsetNodereclaim,
  ],
  ["memory_thp_fault_alloc", "The thp_fault_alloc amount", "bytes", "memory", (m) => m.memory?.thpFaultAlloc],
  [
    "memory_thp_collapse_alloc",
    "The thp_collapse_alloc amount",
    "bytes",
    "memory",
    (m) => m.memory?.thpCollapseAlloc,
  ],
  [
    "memory_oom",
    "The number of times a container has received an oom event",
    "total",
    "memoryEvents",
    (m) => m.memoryEvents?.oom,
  ],
];

/** v1's blkio families (metrics/cgroups/v1/blkio.go): one series per entry, labelled op, device, major, minor. */
const V1_BLKIO: readonly [string, string, string, keyof v1.BlkIOStat][] = [
  ["blkio_io_merged_recursive", "The blkio io merged recursive", "total", "ioMergedRecursive"],
  ["blkio_io_queued_recursive", "The blkio io queued recursive", "total", "ioQueuedRecursive"],
  [
    "blkio_io_service_bytes_recursive",
    "The blkio io service bytes recursive",
    "bytes",
    "ioServiceBytesRecursive",
  ],
  [
    "blkio_io_service_time_recursive",
    "The blkio io service time recursive",
    "total",
    "ioServiceTimeRecursive",
  ],
  ["blkio_io_serviced_recursive", "The blkio io serviced recursive", "total", "ioServicedRecursive"],
  ["blkio_io_time_recursive", "The blkio io time recursive", "total", "ioTimeRecursive"],
  ["blkio_sectors_recursive", "The blkio sectors recursive", "total", "sectorsRecursive"],
];

/** v1's hugetlb families (metrics/cgroups/v1/hugetlb.go), labelled by page size. */
const V1_HUGETLB: readonly [string, string, string, "usage" | "failcnt" | "max"][] = [
  ["hugetlb_usage", "The hugetlb usage", "bytes", "usage"],
  ["hugetlb_failcnt", "The hugetlb failcnt", "total", "failcnt"],
  ["hugetlb_max", "The hugetlb maximum usage", "bytes", "max"],
];

/** v2's io families (metrics/cgroups/v2/io.go), labelled major and minor. */
const V2_IO: readonly [string, string, string, "rbytes" | "wbytes" | "rios" | "wios"][] = [
  ["io_rbytes", "IO bytes read", "bytes", "rbytes"],
  ["io_wbytes", "IO bytes written", "bytes", "wbytes"],
  ["io_rios", "Number of read IOs", "total", "rios"],
  ["io_wios", "Number of write IOs", "total", "wios"],
];

/** Collects the container_* families of many tasks, one metrics message at a time. */
export class CgroupFamilies {
  readonly #families = new Map<string, Family>();

  /** Adds one task's series; a payload that is neither v1 nor v2 metrics is left out. */
  add(id: string, namespace: string, data: Any): void {
    const task = { container_id: id, namespace };
    if (data.typeUrl.endsWith("cgroups.v1.Metrics")) this.#v1(task, fromBinary(v1.MetricsSchema, data.value));
    else if (data.typeUrl.endsWith("cgroups.v2.Metrics")) {
      this.#v2(task, fromBinary(v2.MetricsSchema, data.value));
    }
  }

  get families(): Family[] {
    return [...this.#families.values()];
  }

  #v1(task: Labels, m: v1.Metrics): void {
    this.#simple(V1, task, m);
    m.cpu?.usage?.perCpu.forEach((v, i) =>
      this.#put("per_cpu", "The total cpu time per cpu", "nanoseconds", { ...task, cpu: String(i) }, v)
    );
    for (const h of m.hugetlb) {
      for (const [name, help, unit, field] of V1_HUGETLB) {
        this.#put(name, help, unit, { ...task, page: h.pagesize }, h[field]);
      }
    }
    if (m.blkio) {
      for (const [name, help, unit, field] of V1_BLKIO) {
        for (const e of m.blkio[field] as v1.BlkIOEntry[]) {
          const labels = {
            ...task,
            op: e.op,
            device: e.device,
            major: String(e.major),
            minor: String(e.minor),
          };
          this.#put(name, help, unit, labels, e.value);
        }
      }
    }
    // containerd counts OOM events from the cgroup's eventfd (metrics/cgroups/v1/oom.go); the shim's
    // memory.oom_control oom_kill count is the same figure, read at scrape time.
    if (m.memoryOomControl) {
      const help = "The number of times a container has received an oom event";
      this.#put("memory_oom", help, "total", task, m.memoryOomControl.oomKill, "counter");
    }
  }

  #v2(task: Labels, m: v2.Metrics): void {
    this.#simple(V2, task, m);
    for (const e of m.io?.usage ?? []) {
      const labels = { ...task, major: String(e.major), minor: String(e.minor) };
      for (const [name, help, unit, field] of V2_IO) this.#put(name, help, unit, labels, e[field]);
    }
  }

  #simple<M>(defs: readonly Def<M>[], task: Labels, m: M): void {
    for (const [name, help, unit, part, value] of defs) {
      if (m[part] !== undefined) this.#put(name, help, unit, task, value(m) ?? 0n);
    }
  }

  #put(
    name: string,
    help: string,
    unit: string,
    labels: Labels,
    value: bigint,
    type: MetricType = "gauge",
  ): void {
    const full = `container_${name}_${unit}`;
    let f = this.#families.get(full);
    if (!f) this.#families.set(full, f = { name: full, help, type, samples: [] });
    f.samples.push({ labels, value: Number(value) });
  }
}

type Labels = Record<string, string>;
