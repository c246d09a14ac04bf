/**
 * client_golang's process collector (process_collector.go, procfs) for the daemon itself, read from
 * /proc/self at scrape time, and Berth's analogues of Go's runtime families under `berth_*`: the V8
 * heap, threads and the event loop's lag.
 */
import type { Family } from "./exposition.ts";

/** USER_HZ: /proc's clock ticks per second on every Linux architecture Deno runs on. */
const TICKS_PER_SECOND = 100;
const PAGE_SIZE = 4096;

export async function processFamilies(): Promise<Family[]> {
  const [stat, boot, fds, limits] = await Promise.all([
    Deno.readTextFile("/proc/self/stat"),
    bootTime(),
    openFds(),
    Deno.readTextFile("/proc/self/limits").catch(() => ""),
  ]);
  // Fields after the command name, which is in parentheses and may hold spaces.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const field = (n: number) => Number(f[n - 3] ?? 0);
  const gauge = (name: string, help: string, value: number): Family => ({
    name,
    help,
    type: "gauge",
    samples: [{ labels: {}, value }],
  });
  const out: Family[] = [
    {
      name: "process_cpu_seconds_total",
      help: "Total user and system CPU time spent in seconds.",
      type: "counter",
      samples: [{ labels: {}, value: (field(14) + field(15)) / TICKS_PER_SECOND }],
    },
    gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", field(23)),
    gauge("process_resident_memory_bytes", "Resident memory size in bytes.", field(24) * PAGE_SIZE),
    gauge("berth_threads", "Number of OS threads of the daemon (Go's go_threads).", field(20)),
  ];
  if (boot !== undefined) {
    out.push(gauge(
      "process_start_time_seconds",
      "Start time of the process since unix epoch in seconds.",
      boot + field(22) / TICKS_PER_SECOND,
    ));
  }
  if (fds !== undefined) out.push(gauge("process_open_fds", "Number of open file descriptors.", fds));
  const openFiles = limit(limits, "Max open files");
  if (openFiles !== undefined) {
    out.push(gauge("process_max_fds", "Maximum number of open file descriptors.", openFiles));
  }
  const addressSpace = limit(limits, "Max address space");
  if (addressSpace !== undefined) {
    out.push(gauge(
      "process_virtual_memory_max_bytes",
      "Maximum amount of virtual memory available in bytes.",
      addressSpace,
    ));
  }
  return out;
}

/** The V8 heap, as Go's go_memstats_* tell the Go heap. */
export function heapFamilies(): Family[] {
  const mem = Deno.memoryUsage();
  const gauge = (name: string, help: string, value: number): Family => ({
    name,
    help,
    type: "gauge",
    samples: [{ labels: {}, value }],
  });
  return [
    gauge(
      "berth_heap_used_bytes",
      "V8 heap in use, in bytes (Go's go_memstats_heap_inuse_bytes).",
      mem.heapUsed,
    ),
    gauge(
      "berth_heap_total_bytes",
      "V8 heap reserved, in bytes (Go's go_memstats_heap_sys_bytes).",
      mem.heapTotal,
    ),
    gauge(
      "berth_external_memory_bytes",
      "Memory of objects outside the V8 heap (buffers), in bytes.",
      mem.external,
    ),
  ];
}

let boot: number | undefined;

async function bootTime(): Promise<number | undefined> {
  if (boot !== undefined) return boot;
  const text = await Deno.readTextFile("/proc/stat").catch(() => "");
  const m = /^btime (\d+)$/m.exec(text);
  return boot = m ? Number(m[1]) : undefined;
}

async function openFds(): Promise<number | undefined> {
  try {
    let n = 0;
    for await (const _ of Deno.readDir("/proc/self/fd")) n++;
    return n;
  } catch {
    return undefined;
  }
}

/** A soft limit of /proc/self/limits; "unlimited" is reported as procfs does, as the largest uint64. */
function limit(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(name));
  if (!line) return undefined;
  const soft = line.slice(26).trim().split(/\s+/)[0];
  if (soft === "unlimited") return 2 ** 64 - 1;
  const n = Number(soft);
  return Number.isFinite(n) ? n : undefined;
}
