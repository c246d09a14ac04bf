import assert from "node:assert/strict";
import { IdleCollector } from "./idle_gc.ts";

const MiB = 1 << 20;

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

Deno.test("IdleCollector collects once the heap has grown and allocation has stopped, and calls afterEach after each collection", async () => {
  let heap = 10 * MiB;
  let calls = 0;
  let trims = 0;
  const after: number[] = [];
  const collector = new IdleCollector({
    tickMs: 3_600_000, // driven by hand below
    growthBytes: 4 * MiB,
    afterEach: (n) => after.push(n),
    memory: () => ({ heapUsed: heap, rss: 0 }),
    gc: () => {
      calls++;
      heap = 11 * MiB;
    },
    trim: () => trims++,
  });
  try {
    // Right after start-up, the first quiet tick collects what booting left behind.
    await collector.sample();
    assert.equal(calls, 1);
    calls = 0;
    // A burst: the heap keeps growing tick after tick, so nothing is collected yet.
    for (let i = 0; i < 8; i++) {
      heap += MiB;
      await collector.sample();
    }
    assert.equal(calls, 0);
    // Quiet now: the next tick collects, once.
    await collector.sample();
    await collector.sample();
    assert.equal(calls, 1);
    assert.equal(collector.collections, 2);
    // Every collection is followed by a trim of the native heap.
    assert.equal(trims, 2);
    // What follows a collection ran after each, told which one it was.
    assert.deepEqual(after, [1, 2]);
    // Growth below the threshold after the collection is not worth another pause.
    heap += 3 * MiB;
    await collector.sample();
    await collector.sample();
    assert.equal(calls, 1);
  } finally {
    collector.stop();
  }
});

Deno.test("IdleCollector collects when the resident set grew though the heap in use did not", async () => {
  let rss = 80 * MiB;
  let calls = 0;
  const collector = new IdleCollector({
    tickMs: 3_600_000, // driven by hand below
    growthBytes: 1 * MiB,
    rssGrowthBytes: 4 * MiB,
    memory: () => ({ heapUsed: 10 * MiB, rss }),
    gc: () => {
      calls++;
      rss = 80 * MiB;
    },
    trim: () => {},
  });
  try {
    await collector.sample(); // start-up's collection
    assert.equal(calls, 1);
    // Young-generation collections kept heapUsed flat; new space and malloc's arena stayed grown.
    rss = 83 * MiB;
    await collector.sample();
    assert.equal(calls, 1);
    rss = 88 * MiB;
    await collector.sample();
    assert.equal(calls, 2);
    // The baseline is what the collection left: the same resident set again is not growth.
    await collector.sample();
    assert.equal(calls, 2);
  } finally {
    collector.stop();
  }
});

Deno.test("IdleCollector counts a tick as busy when it allocated, though the heap in use did not grow", async () => {
  let heap = 20 * MiB;
  let allocated: number | undefined;
  let calls = 0;
  const collector = new IdleCollector({
    tickMs: 3_600_000, // driven by hand below
    growthBytes: 1 * MiB,
    memory: () => ({ heapUsed: heap, rss: 0, allocated }),
    gc: () => {
      calls++;
    },
    trim: () => {},
  });
  try {
    await collector.sample(); // start-up's collection
    assert.equal(calls, 1);
    // A burst without V8's allocation total: young-generation collections left the heap smaller.
    heap = 23 * MiB;
    await collector.sample();
    heap = 22.5 * MiB;
    allocated = 100 * MiB; // the total from here on
    await collector.sample();
    assert.equal(calls, 1);
    // With the total: 40 MiB allocated in the tick, though the heap in use is where it was.
    allocated += 40 * MiB;
    await collector.sample();
    assert.equal(calls, 1);
    // Quiet: almost nothing allocated since the last tick (the total moves by allocation buffers).
    allocated += 512 << 10;
    await collector.sample();
    assert.equal(calls, 2);
  } finally {
    collector.stop();
  }
});

Deno.test("IdleCollector with V8's own gc() gives garbage back", async () => {
  const collector = new IdleCollector({ tickMs: 20, growthBytes: 8 * MiB });
  try {
    let junk: unknown[] = [];
    for (let i = 0; i < 300_000; i++) junk.push({ i, s: `x${i}` });
    junk = [];
    const before = Deno.memoryUsage().heapUsed;
    for (let i = 0; i < 20 && collector.collections === 0; i++) await delay(20);
    assert.equal(collector.collections, 1);
    const after = Deno.memoryUsage().heapUsed;
    assert.ok(after < before - 8 * MiB, `heap ${before} -> ${after}`);
  } finally {
    collector.stop();
  }
});
