import assert from "node:assert/strict";
import { parseAdoption, readLine } from "./spare.ts";

function streamOf(...chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const s of chunks) c.enqueue(enc.encode(s));
      c.close();
    },
  });
}

Deno.test("readLine() joins chunks up to the first newline; an input that ends first has no line", async () => {
  assert.equal(await readLine(streamOf('{"a":', '1}\n{"b":2}\n')), '{"a":1}');
  assert.equal(await readLine(streamOf("héllo\n")), "héllo");
  assert.equal(await readLine(streamOf('{"a":1}')), undefined);
  assert.equal(await readLine(streamOf()), undefined);
});

Deno.test("parseAdoption() wants namespace, socket, id and bundle (these two may be empty), and names what is missing", () => {
  const a = { namespace: "ns", id: "c1", bundle: "/run/b", socket: "unix:///run/berth/s/x" };
  assert.deepEqual(parseAdoption(JSON.stringify(a)), a);
  assert.throws(() => parseAdoption("nope"), /adoption is not JSON/);
  assert.throws(() => parseAdoption(JSON.stringify({ ...a, socket: "" })), /lacks "socket"/);
  assert.throws(() => parseAdoption(JSON.stringify({ ...a, namespace: 3 })), /lacks "namespace"/);
  assert.throws(() => parseAdoption("null"), /lacks "namespace"/);
  // Started ahead of its namespace's first container: no container yet, but id and bundle are given.
  const ahead = { ...a, id: "", bundle: "" };
  assert.deepEqual(parseAdoption(JSON.stringify(ahead)), ahead);
  const { bundle: _, ...noBundle } = a;
  assert.throws(() => parseAdoption(JSON.stringify(noBundle)), /lacks "bundle"/);
});
