/**
 * Unmaps the executable's pages once start-up is over. Deno's executable carries V8's start-up snapshot
 * and the sources of its built-in modules in a read-only segment, and the code that compiles modules,
 * deserialises the snapshot and boots the runtime in its text: all run while the process starts and
 * seldom after, yet stay mapped for good. MADV_DONTNEED takes the pages out of this process only: they
 * stay in the page cache, so a shim or CLI starting next still finds them in memory, and a page touched
 * again comes back with a minor fault (with the kernel's fault-around, 64 KiB at a time).
 *
 * Measured on an idle daemon (the bundle, PSS 20 s after its first call): read-only data alone released,
 * 60 MiB, 37 of them the executable's pages; code pages released too, 44 MiB, 22 of them the
 * executable's, which is what an idle daemon runs again (timers, the collector, a Version call) plus
 * fault-around's neighbours. Right after the release the file part is ~11 MiB; it settles within ~10 s.
 * Only mappings without a private (written) page qualify: dropping a relocated RELRO page would read
 * back the unrelocated file and crash. MADV_PAGEOUT would also evict the pages from the page cache,
 * which a shim or CLI starting next would then read from disk.
 */

import { MADV_DONTNEED, madvise } from "../../ffi/memory.ts";
import { isLibcryptoPath, libcryptoLoaded } from "../../ffi/libcrypto.ts";

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

/** Read-only data and code: what a file mapping of the executable can be read back from. */
const RELEASABLE = new Set(["r--p", "r-xp"]);

/** A range of the executable's pages that may be dropped. */
interface Range {
  readonly start: bigint;
  readonly end: bigint;
}

/**
 * The process's own releasable ranges, read from smaps once: the executable's mappings and which of them
 * hold written pages do not change after start-up. Reading smaps at every release allocated ~0.6 MiB
 * (its text and lines) after each idle collection, garbage the next one had to take back. Read once more
 * after libcrypto is loaded (the first content digest): its code, ~5 MiB resident once OpenSSL has set
 * up its providers, is released the same way.
 */
let own: { readonly ranges: readonly Range[]; readonly withLibcrypto: boolean } | undefined;

function releasableRanges(exe: string, smaps: string): Range[] {
  return parseSmaps(smaps)
    .filter((m) =>
      (m.path === exe || isLibcryptoPath(m.path)) && RELEASABLE.has(m.perms) && m.anonymousKiB === 0
    )
    .map((m) => ({ start: m.start, end: m.end }));
}

function ownRanges(): readonly Range[] {
  const withLibcrypto = libcryptoLoaded();
  if (own === undefined || own.withLibcrypto !== withLibcrypto) {
    own = {
      ranges: releasableRanges(Deno.execPath(), Deno.readTextFileSync("/proc/self/smaps")),
      withLibcrypto,
    };
  }
  return own.ranges;
}

/**
 * Drops the read-only and code mappings of the running executable (and of libcrypto, once loaded) that
 * were never written from this process; the bytes advised. Best effort: a failing madvise leaves the rest as it was. `exe` and `smaps`
 * are for tests; without them the process's own ranges are read once and reused.
 */
export function releaseStartupPages(options: { exe?: string; smaps?: string } = {}): number {
  const ranges = options.exe === undefined && options.smaps === undefined ? ownRanges() : releasableRanges(
    options.exe ?? Deno.execPath(),
    options.smaps ?? Deno.readTextFileSync("/proc/self/smaps"),
  );
  let released = 0;
  for (const r of ranges) {
    try {
      madvise(r.start, r.end - r.start, MADV_DONTNEED);
    } catch {
      return released;
    }
    released += Number(r.end - r.start);
  }
  return released;
}
