import assert from "node:assert/strict";
import { type ByteSink, FrameWriter, type FrameWriterEvents } from "./frame_writer.ts";
import { FrameType } from "./frames.ts";
import { closeTimeoutMs, maxQueuedControlFrames, maxWriteBacklog, writeHighWater } from "./limits.ts";

const tick = () => new Promise((r) => setTimeout(r, 0));

/** A sink whose writes finish when the test says so, and the events the writer reported. */
function busySink() {
  const writes: Uint8Array[] = [];
  const closes: boolean[] = [];
  let finish: (err?: Error) => void = () => {};
  const sink: ByteSink = {
    write(b) {
      writes.push(b);
      return new Promise<void>((resolve, reject) => finish = (err) => err ? reject(err) : resolve());
    },
    close: (now) => void closes.push(now),
  };
  const seen = { overflow: [] as string[], drains: 0, failures: [] as unknown[] };
  const events: FrameWriterEvents = {
    overflow: (reason) => void seen.overflow.push(reason),
    drain: () => void seen.drains++,
    failed: (err) => void seen.failures.push(err),
  };
  return { sink, events, writes, closes, seen, finish: (err?: Error) => finish(err) };
}

Deno.test("FrameWriter hands a synchronous sink everything pushed within one tick as one write", async () => {
  const writes: number[][] = [];
  const writer = new FrameWriter({ write: (b) => void writes.push([...b]), close: () => {} }, {
    overflow: () => {},
    drain: () => {},
    failed: () => {},
  });
  writer.push(Uint8Array.of(1, 2));
  writer.pushFrame(0x6, 0x1, 0, Uint8Array.of(9));
  assert.equal(writes.length, 0);
  await Promise.resolve();
  assert.deepEqual(writes, [[1, 2, 0, 0, 1, 6, 1, 0, 0, 0, 0, 9]]);
});

Deno.test("FrameWriter holds what is pushed during an asynchronous write and reports the drain of a full backlog", async () => {
  const { sink, events, writes, seen, finish } = busySink();
  const writer = new FrameWriter(sink, events);
  writer.pushFrame(FrameType.data, 0, 1, new Uint8Array(writeHighWater));
  await tick();
  assert.equal(writes.length, 1);
  assert.equal(writer.full, true, "the batch in flight counts");
  writer.pushFrame(FrameType.data, 0, 1, Uint8Array.of(7));
  await tick();
  assert.equal(writes.length, 1, "nothing else is written while the first write runs");
  finish();
  await tick();
  assert.equal(writes.length, 2);
  assert.equal(writes[1]!.length, 10);
  assert.equal(seen.drains, 1, "a drain follows once the backlog is under the high-water mark");
  finish();
  await tick();
  assert.equal(writer.full, false);
  assert.equal(seen.drains, 1, "no drain that nobody waited for");
});

Deno.test("FrameWriter drops the backlog and reports a failed asynchronous write", async () => {
  const { sink, events, writes, seen, finish } = busySink();
  const writer = new FrameWriter(sink, events);
  writer.pushFrame(FrameType.ping, 0, 0, new Uint8Array(8));
  await tick();
  writer.pushFrame(FrameType.ping, 0, 0, new Uint8Array(8));
  finish(new Error("Broken pipe"));
  await tick();
  assert.equal(writes.length, 1, "what was queued during the failed write is dropped, not written");
  assert.equal(seen.failures.length, 1);
});

Deno.test("FrameWriter cuts a peer that leaves more than maxQueuedControlFrames control frames unread", async () => {
  const { sink, events, writes, closes, seen } = busySink();
  const writer = new FrameWriter(sink, events);
  writer.pushFrame(FrameType.settings, 1, 0);
  await tick();
  // The sink never finishes its first write: the peer does not read.
  for (let i = 0; i < maxQueuedControlFrames; i++) writer.pushFrame(FrameType.ping, 1, 0, new Uint8Array(8));
  assert.deepEqual(seen.overflow, []);
  writer.pushFrame(FrameType.ping, 1, 0, new Uint8Array(8));
  assert.equal(seen.overflow.length, 1);
  assert.match(seen.overflow[0]!, /10001 control frames are queued for a peer that does not read/);
  assert.deepEqual(closes, [true], "the sink is closed at once");
  writer.pushFrame(FrameType.ping, 1, 0, new Uint8Array(8));
  await tick();
  assert.equal(writes.length, 1, "nothing more is written");
});

Deno.test("FrameWriter cuts a peer that leaves more than maxWriteBacklog bytes unread", async () => {
  const { sink, events, closes, seen } = busySink();
  const writer = new FrameWriter(sink, events);
  writer.pushFrame(FrameType.headers, 4, 1, new Uint8Array(100));
  await tick();
  for (let n = 0; n <= maxWriteBacklog; n += 16384) {
    writer.pushFrame(FrameType.headers, 4, 1, new Uint8Array(16384));
  }
  assert.equal(seen.overflow.length, 1);
  assert.match(seen.overflow[0]!, /bytes are queued for a peer that does not read/);
  assert.deepEqual(closes, [true]);
});

Deno.test("FrameWriter closes gracefully after what is queued, and cuts a sink that does not finish in time", async () => {
  const { sink, events, writes, closes, finish } = busySink();
  const writer = new FrameWriter(sink, events);
  writer.pushFrame(FrameType.goaway, 0, 0, new Uint8Array(8));
  await tick();
  writer.pushFrame(FrameType.goaway, 0, 0, new Uint8Array(8));
  writer.close();
  assert.deepEqual(closes, [], "the first write is still running");
  finish();
  await tick();
  assert.equal(writes.length, 2, "what was queued before close() still goes out");
  assert.deepEqual(closes, [], "and the second write is running");
  await new Promise((r) => setTimeout(r, closeTimeoutMs + 50));
  assert.deepEqual(closes, [true], "a close that cannot finish is cut");
});
