/**
 * Makes glibc return large freed blocks to the kernel at once. V8 takes ArrayBuffers (a ttrpc frame, an
 * HTTP/2 body) from malloc, and after the first large block is freed glibc raises its mmap threshold to
 * that block's size (up to 32 MiB), so later ones come from the heap arena and stay resident when freed:
 * a shim fed 200 connections of malformed ttrpc frames (issue 14's fuzz test) kept 15 MiB of freed arena
 * for good, 91 MiB against 69 idle. A fixed threshold (glibc's initial 128 KiB) stops the raising; the
 * cost is an mmap and a munmap per block of 128 KiB or more.
 */

import { M_MMAP_THRESHOLD, mallopt } from "../../ffi/memory.ts";

const THRESHOLD = 128 << 10;

/** Best effort: on a libc without mallopt (musl) memory is handled as before. */
export function unmapLargeAllocations(): void {
  try {
    mallopt(M_MMAP_THRESHOLD, THRESHOLD);
  } catch { /* not glibc */ }
}
