import assert from "node:assert/strict";
import { type ByteSink, FrameBatcher } from "./frame_batcher.ts";

Deno.test("FrameBatcher hands a synchronous sink everything pushed within one tick as one write", async () => {
  const writes: number[][] = [];
  const batcher = new FrameBatcher({ write: (b) => void writes.push([...b]), full: () => false });
  batcher.push(Uint8Array.of(1, 2));
  batcher.pushFrame(0x6, 0x1, 0, Uint8Array.of(9));
  assert.equal(writes.length, 0);
  await Promise.resolve();
  assert.deepEqual(writes, [[1, 2, 0, 0, 1, 6, 1, 0, 0, 0, 0, 9]]);
});

Deno.test("FrameBatcher holds what is pushed during an asynchronous write back and sends it as the next one", async () => {
  const writes: number[][] = [];
  let finish: () => void = () => {};
  let settled = 0;
  const sink: ByteSink = {
    write(b) {
      writes.push([...b]);
      return new Promise<void>((resolve) => finish = resolve);
    },
    full: (backlog) => backlog >= 2,
    settled: () => settled++,
  };
  const batcher = new FrameBatcher(sink);
  batcher.push(Uint8Array.of(1));
  await Promise.resolve();
  assert.deepEqual(writes, [[1]]);
  batcher.push(Uint8Array.of(2));
  batcher.push(Uint8Array.of(3));
  let drained = false;
  batcher.drained().then(() => drained = true);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(writes.length, 1, "nothing else is written while the first write runs");
  assert.equal(drained, false, "a backlog at the high-water mark makes writers wait");
  finish();
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(writes, [[1], [2, 3]]);
  assert.equal(drained, false, "writers go on once the batch that filled the backlog is written");
  finish();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(drained, true);
  assert.equal(settled, 1);
  assert.equal(batcher.idle, true);
});

Deno.test("FrameBatcher drops the backlog and tells the sink when an asynchronous write fails", async () => {
  const failures: unknown[] = [];
  let writes = 0;
  const batcher = new FrameBatcher({
    write: () => {
      writes++;
      return Promise.reject(new Error("Broken pipe"));
    },
    full: () => false,
    failed: (err) => failures.push(err),
  });
  batcher.push(Uint8Array.of(1));
  await Promise.resolve();
  batcher.push(Uint8Array.of(2));
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(writes, 1, "what was pushed during the failed write is dropped, not written");
  assert.equal(failures.length, 1);
  assert.equal(batcher.idle, true);
});
