/**
 * madvise(2): telling the kernel which of the process's pages it will not need soon. Opened on first use.
 */

import { check } from "./libc.ts";

/**
 * Drop the range from this process. A private file mapping's untouched pages are read again from the page
 * cache when next touched; pages the process wrote to (relocations, copies on write) would be lost.
 */
export const MADV_DONTNEED = 4;

const SYMBOLS = {
  madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

let lib: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | undefined;

/** madvise(2) over [start, start + length); throws a SyscallError on failure. */
export function madvise(start: bigint, length: bigint, advice: number): void {
  lib ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  const rc = lib.madvise(Deno.UnsafePointer.create(start), length, advice);
  check(rc, "madvise", () => `Cannot madvise ${length} bytes at 0x${start.toString(16)}`);
}
