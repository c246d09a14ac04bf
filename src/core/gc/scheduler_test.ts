import assert from "node:assert/strict";
import type { Clock, Collector, GcConfig, GcResult } from "./mod.ts";
import { GcScheduler } from "./mod.ts";

/** Time that moves only when told; timers fire in order as it passes. */
class FakeClock implements Clock {
  t = 0;
  #next = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#next;
    this.#timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves to `to`, firing due timers in order and letting the collections they start settle. */
  async until(to: number): Promise<void> {
    for (;;) {
      const due = [...this.#timers].filter(([, t]) => t.at <= to).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
      await settle();
    }
    this.t = to;
    await settle();
  }
}

/** Lets promise chains run (a real macrotask turn drains every microtask). */
const settle = () => new Promise((r) => setTimeout(r, 0));

/** Records when it was asked to collect; each collection "pauses" `pauseMs`. */
class FakeCollector implements Collector {
  readonly runs: number[] = [];
  pauseMs = 10;
  failNext = false;
  constructor(readonly clock: FakeClock) {}
  collect(): Promise<GcResult> {
    this.runs.push(this.clock.now());
    if (this.failNext) {
      this.failNext = false;
      return Promise.reject(new Error("disk on fire"));
    }
    const n = this.runs.length;
    return Promise.resolve({
      removedContent: n,
      removedSnapshots: 0,
      expiredLeases: 0,
      pauseMs: this.pauseMs,
      ms: 1,
    });
  }
}

async function withScheduler(
  config: Partial<GcConfig>,
  fn: (s: { clock: FakeClock; gc: FakeCollector; scheduler: GcScheduler }) => Promise<void>,
): Promise<void> {
  const clock = new FakeClock();
  const gc = new FakeCollector(clock);
  const scheduler = new GcScheduler(gc, { config, clock });
  scheduler.start();
  try {
    await fn({ clock, gc, scheduler });
  } finally {
    await scheduler.stop();
  }
  assert.equal(clock.pending, 0, "stop() leaves no timer");
}

// With containerd's defaults and a 10 ms pause, the interval after a collection is 10/0.02 - 10 = 490 ms.

Deno.test("GcScheduler collects once startup_delay after start, then skips ticks nothing asked for", async () => {
  await withScheduler({}, async ({ clock, gc }) => {
    await clock.until(99);
    assert.deepEqual(gc.runs, []);
    await clock.until(100);
    assert.deepEqual(gc.runs, [100]);
    await clock.until(10_000);
    assert.deepEqual(gc.runs, [100], "an idle daemon does not collect");
  });
});

Deno.test("GcScheduler runs a deletion's collection at the next tick of the pause-threshold interval", async () => {
  await withScheduler({}, async ({ clock, gc, scheduler }) => {
    await clock.until(100);
    await clock.until(200);
    scheduler.mutated(true);
    await clock.until(589);
    assert.deepEqual(gc.runs, [100]);
    await clock.until(590);
    assert.deepEqual(gc.runs, [100, 590]);
    // Ticks kept coming every 490 ms while nothing was wanted: 1080, 1570, 2060.
    await clock.until(2000);
    scheduler.mutated(true);
    await clock.until(2059);
    assert.deepEqual(gc.runs, [100, 590]);
    await clock.until(2060);
    assert.deepEqual(gc.runs, [100, 590, 2060]);
  });
});

Deno.test("GcScheduler counts every mutation after a deletion as a deletion until it has collected", async () => {
  await withScheduler({ deletionThreshold: 3, scheduleDelayMs: 5 }, async ({ clock, gc, scheduler }) => {
    await clock.until(100);
    await clock.until(150);
    scheduler.mutated(true);
    // The database stays dirty: later writes report it, as containerd's do.
    scheduler.mutated(true);
    await clock.until(160);
    scheduler.mutated(true);
    await clock.until(165);
    assert.deepEqual(
      gc.runs,
      [100, 165],
      "the third deletion brings the collection forward to schedule_delay",
    );
  });
});

Deno.test("GcScheduler lets mutation_threshold mutations, and not fewer, make a tick collect", async () => {
  await withScheduler({ mutationThreshold: 3 }, async ({ clock, gc, scheduler }) => {
    await clock.until(100);
    scheduler.mutated(false);
    scheduler.mutated(false);
    await clock.until(1000);
    assert.deepEqual(gc.runs, [100], "two mutations: the tick at 590 is skipped");
    scheduler.mutated(false);
    await clock.until(1079);
    assert.deepEqual(gc.runs, [100]);
    await clock.until(1080);
    assert.deepEqual(gc.runs, [100, 1080]);
  });
});

Deno.test("GcScheduler with no startup delay waits for a deletion or the mutation threshold, then collects at once", async () => {
  await withScheduler({ startupDelayMs: 0 }, async ({ clock, gc, scheduler }) => {
    scheduler.mutated(false);
    await clock.until(5000);
    assert.deepEqual(gc.runs, [], "nothing scheduled, nothing asked");
    scheduler.mutated(true);
    await clock.until(5000);
    assert.deepEqual(gc.runs, [5000]);
  });
  await withScheduler({ startupDelayMs: 0, mutationThreshold: 2 }, async ({ clock, gc, scheduler }) => {
    await clock.until(300);
    scheduler.mutated(false);
    scheduler.mutated(false);
    await clock.until(300);
    assert.deepEqual(gc.runs, [300]);
  });
});

Deno.test("GcScheduler interval is the mean pause over pause_threshold minus the mean pause", async () => {
  await withScheduler({ pauseThreshold: 0.1 }, async ({ clock, gc, scheduler }) => {
    gc.pauseMs = 20; // interval 20/0.1 - 20 = 180
    await clock.until(100);
    scheduler.mutated(true);
    gc.pauseMs = 40; // mean 30: interval 30/0.1 - 30 = 270
    await clock.until(280);
    assert.deepEqual(gc.runs, [100, 280]);
    scheduler.mutated(true);
    await clock.until(549);
    assert.equal(gc.runs.length, 2);
    await clock.until(550);
    assert.deepEqual(gc.runs, [100, 280, 550]);
  });
  await withScheduler({ pauseThreshold: 0 }, async ({ clock, gc, scheduler }) => {
    await clock.until(100);
    scheduler.mutated(true);
    await clock.until(1100);
    assert.deepEqual(gc.runs, [100, 1100], "pause_threshold 0 keeps containerd's 1 s interval");
  });
});

Deno.test("GcScheduler.scheduleAndWait collects after schedule_delay and resolves with that collection", async () => {
  await withScheduler({ scheduleDelayMs: 30 }, async ({ clock, gc, scheduler }) => {
    await clock.until(100);
    const a = scheduler.scheduleAndWait();
    const b = scheduler.scheduleAndWait();
    await clock.until(130);
    assert.deepEqual(gc.runs, [100, 130]);
    assert.equal((await a).removedContent, 2, "the collection that ran after the call");
    assert.equal((await b).removedContent, 2, "two waiters share one collection");
  });
});

Deno.test("GcScheduler gives a waiter that arrives during a collection the next one", async () => {
  const clock = new FakeClock();
  let release!: () => void;
  const runs: number[] = [];
  const slow: Collector = {
    collect() {
      runs.push(clock.now());
      if (runs.length > 1) return Promise.resolve(result(runs.length));
      return new Promise((r) => (release = () => r(result(1))));
    },
  };
  const scheduler = new GcScheduler(slow, { config: { startupDelayMs: 0 }, clock });
  scheduler.start();
  try {
    const first = scheduler.scheduleAndWait();
    await clock.until(0);
    assert.deepEqual(runs, [0]);
    // A deletion and a sync wait while the collection runs: it may have marked before them.
    scheduler.mutated(true);
    const second = scheduler.scheduleAndWait();
    await clock.until(50);
    assert.deepEqual(runs, [0], "one collection at a time");
    release();
    assert.equal((await first).removedContent, 1);
    await clock.until(50);
    assert.deepEqual(runs, [0, 50]);
    assert.equal((await second).removedContent, 2);
  } finally {
    await scheduler.stop();
  }
});

Deno.test("GcScheduler rejects the waiters of a failed collection and retries after the last gap plus a second", async () => {
  await withScheduler({}, async ({ clock, gc, scheduler }) => {
    await clock.until(200);
    scheduler.mutated(true);
    gc.failNext = true;
    const waiting = assert.rejects(scheduler.scheduleAndWait(), /disk on fire/);
    await clock.until(200);
    assert.deepEqual(gc.runs, [100, 200]);
    await waiting;
    // containerd: the gap from the last collection to this one (100 ms), plus a second.
    await clock.until(1299);
    assert.deepEqual(gc.runs, [100, 200]);
    await clock.until(1300);
    assert.deepEqual(gc.runs, [100, 200, 1300], "the deletion is still collected");
  });
});

Deno.test("GcScheduler.stop refuses later waiters and an aborted wait rejects with its reason", async () => {
  const clock = new FakeClock();
  const scheduler = new GcScheduler(new FakeCollector(clock), { config: { scheduleDelayMs: 1000 }, clock });
  scheduler.start();
  const abort = new AbortController();
  const aborted = scheduler.scheduleAndWait(abort.signal);
  abort.abort(new Error("client went away"));
  await assert.rejects(aborted, /client went away/);
  const refused = scheduler.scheduleAndWait();
  await scheduler.stop();
  await assert.rejects(refused, /the collector is stopping/);
  await assert.rejects(scheduler.scheduleAndWait(), /the collector is stopped/);
  assert.equal(clock.pending, 0);
});

Deno.test("GcScheduler hears of mutations from its source until stopped", async () => {
  const clock = new FakeClock();
  const gc = new FakeCollector(clock);
  const listeners = new Set<(dirty: boolean) => void>();
  const source = {
    onMutation(fn: (dirty: boolean) => void) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
  const scheduler = new GcScheduler(gc, { config: { startupDelayMs: 0 }, clock, mutations: source });
  scheduler.start();
  for (const l of listeners) l(true);
  await clock.until(0);
  assert.deepEqual(gc.runs, [0]);
  await scheduler.stop();
  assert.equal(listeners.size, 0);
});

Deno.test("GcScheduler collects deletions its source committed before it started listening", async () => {
  const clock = new FakeClock();
  const gc = new FakeCollector(clock);
  const source = { dirty: true, onMutation: () => () => {} };
  const scheduler = new GcScheduler(gc, { config: { startupDelayMs: 0 }, clock, mutations: source });
  scheduler.start();
  await clock.until(0);
  assert.deepEqual(gc.runs, [0]);
  await scheduler.stop();

  const idle = new FakeCollector(clock);
  const clean = new GcScheduler(idle, {
    config: { startupDelayMs: 0 },
    clock,
    mutations: { dirty: false, onMutation: () => () => {} },
  });
  clean.start();
  await clock.until(50);
  assert.deepEqual(idle.runs, [], "nothing to collect, nothing scheduled");
  await clean.stop();
});

function result(n: number): GcResult {
  return { removedContent: n, removedSnapshots: 0, expiredLeases: 0, pauseMs: 1, ms: 1 };
}
