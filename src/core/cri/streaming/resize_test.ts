import assert from "node:assert/strict";
import { JsonValueSplitter, parseTerminalSize, TerminalSizes } from "./resize.ts";
import type { TerminalSize } from "./types.ts";

const enc = new TextEncoder();

function streamOf(...chunks: string[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks.map((c) => enc.encode(c)));
}

async function collect(sizes: AsyncIterable<TerminalSize>): Promise<TerminalSize[]> {
  const out: TerminalSize[] = [];
  for await (const s of sizes) out.push(s);
  return out;
}

Deno.test("JsonValueSplitter cuts objects as json.Encoder writes them, across chunk borders", () => {
  const s = new JsonValueSplitter(4096);
  assert.deepEqual(s.push(enc.encode('{"Width":80,"Height":24}\n{"Wid')), ['{"Width":80,"Height":24}']);
  assert.deepEqual(s.push(enc.encode('th":100,"Height":40}\n')), ['{"Width":100,"Height":40}']);
  assert.deepEqual(s.push(enc.encode('{"x":"}{\\"}"}')), ['{"x":"}{\\"}"}']);
});

Deno.test("JsonValueSplitter stops at a value that is not an object, or one over its size limit", () => {
  const s = new JsonValueSplitter(4096);
  assert.deepEqual(s.push(enc.encode('{"Width":1,"Height":2} 42\n')), ['{"Width":1,"Height":2}']);
  assert.match(s.invalid ?? "", /Unexpected "4"/);
  assert.deepEqual(s.push(enc.encode('{"Width":1,"Height":2}')), []);
  const small = new JsonValueSplitter(16);
  assert.deepEqual(small.push(enc.encode(`{"Width":${"1".repeat(20)}`)), []);
  assert.match(small.invalid ?? "", /longer than 16 bytes/);
});

Deno.test("parseTerminalSize reads fields in any case, drops zero sides and rejects what Go would", () => {
  assert.deepEqual(parseTerminalSize('{"Width":80,"Height":24}'), { width: 80, height: 24 });
  assert.deepEqual(parseTerminalSize('{"width":80,"HEIGHT":24,"extra":true}'), { width: 80, height: 24 });
  assert.equal(parseTerminalSize('{"Width":0,"Height":24}'), undefined);
  assert.equal(parseTerminalSize('{"Width":70000,"Height":24}'), "invalid");
  assert.equal(parseTerminalSize('{"Width":-1,"Height":24}'), "invalid");
  assert.equal(parseTerminalSize('{"Width":"80","Height":24}'), "invalid");
});

Deno.test("TerminalSizes yields each size the client sends and ends with the stream", async () => {
  const sizes = new TerminalSizes(streamOf('{"Width":80,"Height":24}\n', '{"Width":120,"Height":40}\n'));
  const seen = await collect(sizes);
  // A consumer that reads after both arrived sees the latest only; one that keeps up sees both.
  assert.ok(seen.length >= 1 && seen.length <= 2);
  assert.deepEqual(seen.at(-1), { width: 120, height: 40 });
});

Deno.test("TerminalSizes ends at invalid input and cancels the rest of the stream", async () => {
  let cancelled = false;
  const input = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(enc.encode('{"Width":80,"Height":24}\nnot json'));
    },
    cancel() {
      cancelled = true;
    },
  });
  assert.deepEqual(await collect(new TerminalSizes(input)), [{ width: 80, height: 24 }]);
  assert.ok(cancelled);
});

Deno.test("TerminalSizes.none() ends at once", async () => {
  assert.deepEqual(await collect(TerminalSizes.none()), []);
});
