import assert from "node:assert/strict";
import { parseStopSignal as parseSignal } from "./containers.ts";
import { Fanout } from "./container_io.ts";

function controlled() {
  let ctl!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({ start: (c) => void (ctl = c) });
  return { stream, push: (s: string) => ctl.enqueue(new TextEncoder().encode(s)), end: () => ctl.close() };
}

async function text(s: ReadableStream<Uint8Array>): Promise<string> {
  let out = "";
  for await (const c of s.pipeThrough(new TextDecoderStream())) out += c;
  return out;
}

Deno.test("Fanout gives each subscriber what arrives after it subscribed, and ends them with the source", async () => {
  const src = controlled();
  const f = new Fanout(src.stream);
  const log = text(f.subscribe({ lossless: true }));
  src.push("one ");
  await new Promise((r) => setTimeout(r, 10));
  const late = text(f.subscribe());
  src.push("two");
  src.end();
  assert.equal(await log, "one two");
  assert.equal(await late, "two");
  assert.equal(await text(f.subscribe()), "", "a subscriber after the end gets nothing and ends");
});

Deno.test("parseSignal() reads an image's stop signal by name, short name or number", () => {
  assert.equal(parseSignal("SIGTERM"), 15);
  assert.equal(parseSignal("quit"), 3);
  assert.equal(parseSignal("9"), 9);
  assert.equal(parseSignal("SIGRTMIN+3"), 37);
  assert.equal(parseSignal("SIGPWR"), 30);
  assert.throws(() => parseSignal("SIGNOPE"), /Invalid stop signal "SIGNOPE"/);
});
