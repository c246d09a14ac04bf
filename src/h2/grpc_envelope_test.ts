import assert from "node:assert/strict";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { ChunkQueue, EnvelopeError, EnvelopeReader } from "./grpc_envelope.ts";

Deno.test("ChunkQueue hands out messages that span DATA frames intact, copying only across chunks", () => {
  const q = new ChunkQueue();
  const bytes = Uint8Array.from({ length: 100 }, (_, i) => i);
  for (let i = 0; i < 100; i += 7) q.push(bytes.subarray(i, Math.min(100, i + 7)));
  assert.equal(q.size, 100);
  assert.deepEqual([...q.peek(10)], [...bytes.subarray(0, 10)]);
  assert.equal(q.size, 100);
  assert.deepEqual([...q.take(3)], [0, 1, 2]);
  assert.deepEqual([...q.take(50)], [...bytes.subarray(3, 53)]);
  assert.deepEqual([...q.take(47)], [...bytes.subarray(53, 100)]);
  assert.equal(q.size, 0);
  // Within one chunk: a view, no copy.
  const one = new Uint8Array(16);
  q.push(one);
  assert.equal(q.take(8).buffer, one.buffer);
});

Deno.test("EnvelopeReader splits a body cut at any byte into the messages encodeEnvelope framed", () => {
  const messages = [new Uint8Array(0), Uint8Array.of(1, 2, 3), new Uint8Array(300).fill(7)];
  const body = new Uint8Array(messages.reduce((n, m) => n + 5 + m.length, 0));
  let at = 0;
  for (const m of messages) {
    body.set(encodeEnvelope(0, m), at);
    at += 5 + m.length;
  }
  for (const step of [1, 4, 5, 6, 64, body.length]) {
    const reader = new EnvelopeReader(1024);
    const out: Uint8Array[] = [];
    for (let i = 0; i < body.length; i += step) {
      reader.push(body.subarray(i, i + step));
      for (let m = reader.next(); m !== undefined; m = reader.next()) out.push(m);
    }
    assert.deepEqual(out.map((m) => [...m]), messages.map((m) => [...m]), `step ${step}`);
    assert.equal(reader.buffered, 0);
  }
});

Deno.test("EnvelopeReader rejects compressed and oversized messages once their header is in, and counts a cut tail", () => {
  const compressed = new EnvelopeReader(1024);
  compressed.push(Uint8Array.of(1, 0, 0, 0, 1));
  assert.throws(() => compressed.next(), (e) => e instanceof EnvelopeError && e.reason === "compressed");
  const large = new EnvelopeReader(4);
  large.push(encodeEnvelope(0, new Uint8Array(5)).subarray(0, 5));
  assert.throws(
    () => large.next(),
    (e) =>
      e instanceof EnvelopeError && e.reason === "too_large" &&
      /message size 5 .* readMaxBytes 4/.test(e.message),
  );
  const cut = new EnvelopeReader(1024);
  cut.push(encodeEnvelope(0, Uint8Array.of(1, 2, 3)).subarray(0, 7));
  assert.equal(cut.next(), undefined);
  assert.equal(cut.buffered, 7);
});
