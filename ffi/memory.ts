/**
 * madvise(2) and mallopt(3): telling the kernel which of the process's pages it will not need soon, and
 * glibc's allocator when to give memory back. Opened on first use.
 */

import { lazySymbols } from "./lazy_symbols.ts";
import { check } from "./libc.ts";

/**
 * Drop the range from this process. A private file mapping's untouched pages are read again from the page
 * cache when next touched; pages the process wrote to (relocations, copies on write) would be lost.
 */
export const MADV_DONTNEED = 4;

/** mallopt parameter: allocations from this size are mmapped, and unmapped when freed. */
export const M_MMAP_THRESHOLD = -3;

const SYMBOLS = {
  madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  mallopt: { parameters: ["i32", "i32"], result: "i32" },
  malloc_trim: { parameters: ["usize"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

const lib: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] = lazySymbols(SYMBOLS);

/** madvise(2) over [start, start + length); throws a SyscallError on failure. */
export function madvise(start: bigint, length: bigint, advice: number): void {
  const rc = lib.madvise(Deno.UnsafePointer.create(start), length, advice);
  check(rc, "madvise", () => `Cannot madvise ${length} bytes at 0x${start.toString(16)}`);
}

/** mallopt(3); throws when glibc refuses the value (it returns 0, not -1, and sets no errno). */
export function mallopt(param: number, value: number): void {
  if (lib.mallopt(param, value) !== 1) throw new RangeError(`Cannot set mallopt ${param} to ${value}`);
}

/**
 * malloc_trim(3): gives the kernel every whole free page of glibc's arenas, those between live blocks too
 * (not only the top of the heap, as free() does). Returns whether any memory was released.
 */
export function mallocTrim(pad = 0): boolean {
  return lib.malloc_trim(BigInt(pad)) === 1;
}
