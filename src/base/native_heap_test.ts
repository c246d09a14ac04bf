import assert from "node:assert/strict";

const MiB = 1 << 20;

/**
 * Run in a process of its own: the test runner's other files (run in parallel, in the same process) free
 * and trim memory of their own between the two readings.
 */
const PROBE = `
import { trimNativeHeap } from ${JSON.stringify(new URL("./native_heap.ts", import.meta.url).href)};
const [{ default: v8 }, { default: vm }] = await Promise.all([import("node:v8"), import("node:vm")]);
v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc");
// 64 KiB stores come from the arena (below glibc's mmap threshold); one in eight stays alive, so the free
// ones between them cannot go back by free() alone.
let blocks = Array.from({ length: 512 }, () => new Uint8Array(64 << 10).fill(1));
const kept = blocks.filter((_, i) => i % 8 === 0);
blocks = [];
gc();
// V8 frees ArrayBuffer stores after the collection, on a background thread.
await new Promise((r) => setTimeout(r, 100));
const before = Deno.memoryUsage().rss;
trimNativeHeap();
console.log(JSON.stringify({ before, after: Deno.memoryUsage().rss, kept: kept.length }));
`;

Deno.test("trimNativeHeap gives back free pages that live blocks pin inside glibc's arena", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = out.stdin.getWriter();
  await writer.write(new TextEncoder().encode(PROBE));
  await writer.close();
  const { code, stdout, stderr } = await out.output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const { before, after, kept } = JSON.parse(new TextDecoder().decode(stdout));
  assert.equal(kept, 64);
  // 28 MiB are free and resident: 448 stores of 64 KiB.
  assert.ok(
    before - after > 16 * MiB,
    `RSS ${(before / MiB).toFixed(1)} -> ${(after / MiB).toFixed(1)} MiB, expected 16 MiB less`,
  );
});
