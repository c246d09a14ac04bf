/**
 * Unmaps the executable's read-only data once start-up is over. Deno's executable carries V8's start-up
 * snapshot and the sources of its built-in modules in a read-only segment: read while the process starts
 * and seldom after, yet mapped for good, ~13 MiB of an idle daemon's ~68 MiB PSS (measured). MADV_DONTNEED
 * takes the pages out of this process only: they stay in the page cache, so a shim or CLI starting next
 * still finds them in memory, and a page touched again comes back with a minor fault (~3 MiB do once
 * calls arrive). Only mappings without a private (written) page qualify: dropping a relocated RELRO
 * page would read back the unrelocated file and crash. Code pages are left alone: every wake-up runs
 * some of them, and MADV_PAGEOUT, which measured the same, also evicts the pages from the page cache.
 */

import { MADV_DONTNEED, madvise } from "../../ffi/memory.ts";

/** One mapping of /proc/self/smaps: its range, permissions, file, and kB of private (anonymous) pages. */
export interface Mapping {
  readonly start: bigint;
  readonly end: bigint;
  readonly perms: string;
  readonly path: string;
  readonly anonymousKiB: number;
}

const HEADER = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/;

export function parseSmaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  let current: { -readonly [K in keyof Mapping]: Mapping[K] } | undefined;
  for (const line of text.split("\n")) {
    const m = HEADER.exec(line);
    if (m) {
      current = {
        start: BigInt(`0x${m[1]}`),
        end: BigInt(`0x${m[2]}`),
        perms: m[3]!,
        path: m[4]!,
        anonymousKiB: 0,
      };
      out.push(current);
    } else if (current && line.startsWith("Anonymous:")) {
      current.anonymousKiB = parseInt(line.slice("Anonymous:".length), 10);
    }
  }
  return out;
}

/**
 * Drops the read-only, never-written file mappings of the running executable from this process; the
 * bytes advised. Best effort: a failing madvise leaves the rest as it was.
 */
export function releaseStartupPages(options: { exe?: string; smaps?: string } = {}): number {
  const exe = options.exe ?? Deno.execPath();
  let released = 0;
  for (const m of parseSmaps(options.smaps ?? Deno.readTextFileSync("/proc/self/smaps"))) {
    if (m.path !== exe || m.perms !== "r--p" || m.anonymousKiB !== 0) continue;
    try {
      madvise(m.start, m.end - m.start, MADV_DONTNEED);
    } catch {
      return released;
    }
    released += Number(m.end - m.start);
  }
  return released;
}
