/**
 * `docker stats`'s numbers from a task's cgroup metrics (containerd's v1 or v2 Metrics message, as
 * Tasks.Metrics returns them) and the network counters of its network namespace (/proc/<pid>/net/dev),
 * and docker's way of printing them: "1.434MiB / 7.772GiB", "1.05kB / 0B", "0.25%".
 */
import { fromBinary } from "@bufbuild/protobuf";
import * as v1 from "../gen/cgroups/v1/metrics_pb.ts";
import * as v2 from "../gen/cgroups/v2/metrics_pb.ts";

/** A Metrics payload decoded by its type: cgroup v1's or v2's message. */
export type CgroupMetrics =
  | { readonly version: 1; readonly metrics: v1.Metrics }
  | { readonly version: 2; readonly metrics: v2.Metrics };

/** Decodes Tasks.Metrics' `data` Any (`io.containerd.cgroups.v1.Metrics` or `.v2.Metrics`). */
export function decodeMetrics(typeUrl: string, value: Uint8Array): CgroupMetrics {
  if (typeUrl.endsWith("cgroups.v1.Metrics")) {
    return { version: 1, metrics: fromBinary(v1.MetricsSchema, value) };
  }
  if (typeUrl.endsWith("cgroups.v2.Metrics")) {
    return { version: 2, metrics: fromBinary(v2.MetricsSchema, value) };
  }
  throw new Error(`Cannot read metrics of type "${typeUrl}": not cgroups v1 or v2 metrics`);
}

/** What a stats row is made of, in bytes and nanoseconds. */
export interface StatsSample {
  /** Total CPU time used, in nanoseconds. */
  readonly cpuNs: number;
  /** Memory in use without the reclaimable page cache, as docker counts it. */
  readonly memUsage: number;
  /** The cgroup's limit; 0 when unlimited. */
  readonly memLimit: number;
  readonly blockRead: number;
  readonly blockWrite: number;
  readonly pids: number;
}

/** cgroup v1's "no limit" (PAGE_COUNTER_MAX pages) and v2's "max" both come as huge numbers. */
const UNLIMITED = 2 ** 62;

export function sampleOf(m: CgroupMetrics): StatsSample {
  if (m.version === 1) {
    const x = m.metrics;
    const usage = Number(x.memory?.usage?.usage ?? 0n);
    const inactive = Number(x.memory?.totalInactiveFile ?? 0n);
    const limit = Number(x.memory?.usage?.limit ?? 0n);
    let read = 0;
    let write = 0;
    for (const e of x.blkio?.ioServiceBytesRecursive ?? []) {
      if (e.op.toLowerCase() === "read") read += Number(e.value);
      if (e.op.toLowerCase() === "write") write += Number(e.value);
    }
    return {
      cpuNs: Number(x.cpu?.usage?.total ?? 0n),
      memUsage: inactive < usage ? usage - inactive : usage,
      memLimit: limit >= UNLIMITED ? 0 : limit,
      blockRead: read,
      blockWrite: write,
      pids: Number(x.pids?.current ?? 0n),
    };
  }
  const x = m.metrics;
  const usage = Number(x.memory?.usage ?? 0n);
  const inactive = Number(x.memory?.inactiveFile ?? 0n);
  const limit = Number(x.memory?.usageLimit ?? 0n);
  let read = 0;
  let write = 0;
  for (const e of x.io?.usage ?? []) {
    read += Number(e.rbytes);
    write += Number(e.wbytes);
  }
  return {
    cpuNs: Number(x.cpu?.usageUsec ?? 0n) * 1000,
    memUsage: inactive < usage ? usage - inactive : usage,
    memLimit: limit >= UNLIMITED ? 0 : limit,
    blockRead: read,
    blockWrite: write,
    pids: Number(x.pids?.current ?? 0n),
  };
}

/** Received and sent bytes of the non-loopback interfaces in a /proc/<pid>/net/dev text. */
export function parseNetDev(text: string): { rx: number; tx: number } {
  let rx = 0;
  let tx = 0;
  for (const line of text.split("\n").slice(2)) {
    const i = line.indexOf(":");
    if (i < 0 || line.slice(0, i).trim() === "lo") continue;
    const f = line.slice(i + 1).trim().split(/\s+/).map(Number);
    rx += f[0] ?? 0;
    tx += f[8] ?? 0;
  }
  return { rx, tx };
}

/** The network counters of a process's network namespace (zeros when it is gone). */
export function netIO(pid: number): { rx: number; tx: number } {
  if (pid <= 0) return { rx: 0, tx: 0 };
  try {
    return parseNetDev(Deno.readTextFileSync(`/proc/${pid}/net/dev`));
  } catch {
    return { rx: 0, tx: 0 };
  }
}

/** The host's memory (MemTotal of /proc/meminfo), the limit docker shows for an unlimited container. */
export function hostMemory(): number {
  try {
    const m = /^MemTotal:\s+(\d+) kB$/m.exec(Deno.readTextFileSync("/proc/meminfo"));
    return Number(m?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** `%.<p>g` as Go prints it, without an exponent for the sizes printed here. */
function goG(x: number, precision: number): string {
  return String(Number(x.toPrecision(precision)));
}

function customSize(size: number, base: number, units: readonly string[], precision: number): string {
  let i = 0;
  while (size >= base && i < units.length - 1) {
    size /= base;
    i++;
  }
  return `${goG(size, precision)}${units[i]}`;
}

/** go-units BytesSize: binary units, 4 significant digits ("1.434MiB"). */
export function bytesSize(n: number): string {
  return customSize(n, 1024, ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"], 4);
}

/** go-units HumanSizeWithPrecision(n, 3): decimal units ("1.05kB"). */
export function humanSize(n: number): string {
  return customSize(n, 1000, ["B", "kB", "MB", "GB", "TB", "PB", "EB"], 3);
}

/** CPU use between two samples `wallNs` apart, in percent of one CPU (docker's CPU %). */
export function cpuPercent(previous: StatsSample | undefined, current: StatsSample, wallNs: number): number {
  if (!previous || wallNs <= 0) return 0;
  return Math.max(((current.cpuNs - previous.cpuNs) / wallNs) * 100, 0);
}

/** One `docker stats` row (the full id: the table cuts it to 12), with the keys of `docker stats --format '{{json .}}'`. */
export interface StatsRow {
  ID: string;
  Name: string;
  CPUPerc: string;
  MemUsage: string;
  MemPerc: string;
  NetIO: string;
  BlockIO: string;
  PIDs: string;
  Container: string;
}

export const STATS_COLUMNS: readonly [string, keyof StatsRow][] = [
  ["CONTAINER ID", "ID"],
  ["NAME", "Name"],
  ["CPU %", "CPUPerc"],
  ["MEM USAGE / LIMIT", "MemUsage"],
  ["MEM %", "MemPerc"],
  ["NET I/O", "NetIO"],
  ["BLOCK I/O", "BlockIO"],
  ["PIDS", "PIDs"],
];

export interface StatsInput {
  readonly id: string;
  readonly name: string;
  /** Undefined for a container without a running task: docker's zeros. */
  readonly sample?: StatsSample;
  readonly cpuPercent?: number;
  readonly net?: { rx: number; tx: number };
  /** The limit shown when the cgroup has none. */
  readonly hostMemory: number;
}

export function statsRow(input: StatsInput): StatsRow {
  const s = input.sample;
  const limit = s && s.memLimit > 0 && s.memLimit < input.hostMemory ? s.memLimit : s ? input.hostMemory : 0;
  const memPerc = s && limit > 0 ? (s.memUsage / limit) * 100 : 0;
  const net = input.net ?? { rx: 0, tx: 0 };
  return {
    ID: input.id,
    Name: input.name,
    CPUPerc: `${(input.cpuPercent ?? 0).toFixed(2)}%`,
    MemUsage: `${bytesSize(s?.memUsage ?? 0)} / ${bytesSize(limit)}`,
    MemPerc: `${memPerc.toFixed(2)}%`,
    NetIO: `${humanSize(net.rx)} / ${humanSize(net.tx)}`,
    BlockIO: `${humanSize(s?.blockRead ?? 0)} / ${humanSize(s?.blockWrite ?? 0)}`,
    PIDs: String(s?.pids ?? 0),
    Container: input.name,
  };
}
