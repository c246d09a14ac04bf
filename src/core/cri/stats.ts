/**
 * CRI container stats from a task's cgroup metrics, as containerd 1.6's CRI computes them
 * (pkg/cri/server/container_stats_list_linux.go): CPU core-nanoseconds and nano-cores since the last
 * sample, the memory working set (usage less inactive file pages), available, usage, RSS and page
 * faults, for cgroup v1 and v2.
 */
import { fromBinary } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import { MetricsSchema as V1MetricsSchema } from "../../gen/cgroups/v1/metrics_pb.ts";
import { MetricsSchema as V2MetricsSchema } from "../../gen/cgroups/v2/metrics_pb.ts";
import type { UnixNanos } from "../../base/clock.ts";

export interface CpuUsage {
  readonly timestamp: UnixNanos;
  readonly usageCoreNanoSeconds: bigint;
  readonly usageNanoCores: bigint;
}

export interface MemoryUsage {
  readonly timestamp: UnixNanos;
  readonly workingSetBytes: bigint;
  readonly availableBytes: bigint;
  readonly usageBytes: bigint;
  readonly rssBytes: bigint;
  readonly pageFaults: bigint;
  readonly majorPageFaults: bigint;
}

/** Memory limits at or above this are "no limit" (containerd's isMemoryUnlimited). */
const UNLIMITED = 1n << 62n;

/** Remembers each container's last CPU sample, for the nano-cores rate. */
export class CpuRates {
  readonly #last = new Map<string, { at: UnixNanos; total: bigint }>();

  rate(id: string, total: bigint, at: UnixNanos): bigint {
    const prev = this.#last.get(id);
    this.#last.set(id, { at, total });
    if (!prev || at <= prev.at || total < prev.total) return 0n;
    return (total - prev.total) * 1_000_000_000n / (at - prev.at);
  }

  forget(id: string): void {
    this.#last.delete(id);
  }
}

/** CPU and memory from a task's metrics (io.containerd.cgroups.v1.Metrics or v2), or undefined parts. */
export function containerUsage(
  id: string,
  metrics: Any | undefined,
  at: UnixNanos,
  rates: CpuRates,
): { cpu?: CpuUsage; memory?: MemoryUsage } {
  if (!metrics) return {};
  if (metrics.typeUrl.endsWith("io.containerd.cgroups.v1.Metrics")) {
    const m = fromBinary(V1MetricsSchema, metrics.value);
    const out: { cpu?: CpuUsage; memory?: MemoryUsage } = {};
    if (m.cpu?.usage) {
      const total = m.cpu.usage.total;
      out.cpu = { timestamp: at, usageCoreNanoSeconds: total, usageNanoCores: rates.rate(id, total, at) };
    }
    const mem = m.memory;
    if (mem?.usage) {
      const usage = mem.usage.usage;
      const workingSet = mem.totalInactiveFile < usage ? usage - mem.totalInactiveFile : 0n;
      const limit = mem.usage.limit;
      out.memory = {
        timestamp: at,
        workingSetBytes: workingSet,
        availableBytes: limit < UNLIMITED && limit > workingSet ? limit - workingSet : 0n,
        usageBytes: usage,
        rssBytes: mem.totalRss,
        pageFaults: mem.totalPgFault,
        majorPageFaults: mem.totalPgMajFault,
      };
    }
    return out;
  }
  if (metrics.typeUrl.endsWith("io.containerd.cgroups.v2.Metrics")) {
    const m = fromBinary(V2MetricsSchema, metrics.value);
    const out: { cpu?: CpuUsage; memory?: MemoryUsage } = {};
    if (m.cpu) {
      const total = m.cpu.usageUsec * 1000n;
      out.cpu = { timestamp: at, usageCoreNanoSeconds: total, usageNanoCores: rates.rate(id, total, at) };
    }
    const mem = m.memory;
    if (mem) {
      const workingSet = mem.inactiveFile < mem.usage ? mem.usage - mem.inactiveFile : 0n;
      const limit = mem.usageLimit;
      out.memory = {
        timestamp: at,
        workingSetBytes: workingSet,
        availableBytes: limit < UNLIMITED && limit > workingSet ? limit - workingSet : 0n,
        usageBytes: mem.usage,
        rssBytes: mem.anon,
        pageFaults: mem.pgfault,
        majorPageFaults: mem.pgmajfault,
      };
    }
    return out;
  }
  return {};
}
