import assert from "node:assert/strict";
import { LiveBlobs } from "./live_blobs.ts";

async function readAll(stream: ReadableStream<Uint8Array>): Promise<number[]> {
  const out: number[] = [];
  for await (const c of stream) out.push(...c);
  return out;
}

Deno.test("LiveBlobs hands the unpacker a download from its first byte, then as it arrives", async () => {
  const live = new LiveBlobs();
  const blob = live.open("sha256:a")!;
  blob.push(Uint8Array.of(1, 2));
  const stream = live.take("sha256:a")!;
  assert.equal(live.take("sha256:a"), undefined, "a layer is followed once");
  const all = readAll(stream);
  blob.push(Uint8Array.of(3));
  await new Promise((r) => setTimeout(r, 5));
  blob.push(Uint8Array.of(4, 5));
  blob.end();
  assert.deepEqual(await all, [1, 2, 3, 4, 5]);
  live.close();
});

Deno.test("LiveBlobs abandons a blob whose queue outgrows the budget, so its reader falls back", async () => {
  const live = new LiveBlobs(8);
  const slow = live.open("sha256:slow")!;
  slow.push(new Uint8Array(6));
  slow.push(new Uint8Array(6)); // 12 > 8: nobody is reading it
  assert.equal(live.take("sha256:slow"), undefined);
  // The budget was given back: another blob can use it.
  const next = live.open("sha256:next")!;
  next.push(new Uint8Array(8));
  const stream = live.take("sha256:next")!;
  next.end();
  assert.equal((await readAll(stream)).length, 8);
  live.close();
});

Deno.test("LiveBlobs passes a failed download on to its reader", async () => {
  const live = new LiveBlobs();
  const blob = live.open("sha256:b")!;
  blob.push(Uint8Array.of(1));
  const stream = live.take("sha256:b")!;
  const reading = readAll(stream);
  blob.fail(new Error("registry went away"));
  await assert.rejects(reading, /registry went away/);
  assert.equal(live.open("sha256:b"), undefined, "one live copy per digest and pull");
  live.close();
});
