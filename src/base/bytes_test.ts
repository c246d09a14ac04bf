import assert from "node:assert/strict";
import { concatBytes } from "./bytes.ts";

Deno.test("concatBytes() joins chunks in order, with or without a given total", () => {
  const parts = [new Uint8Array([1, 2]), new Uint8Array([]), new Uint8Array([3])];
  assert.deepEqual(concatBytes(parts), new Uint8Array([1, 2, 3]));
  assert.deepEqual(concatBytes(parts, 3), new Uint8Array([1, 2, 3]));
  assert.deepEqual(concatBytes([]), new Uint8Array([]));
  const one = new Uint8Array([9]);
  assert.notEqual(concatBytes([one]), one, "a copy, even of a single chunk");
  assert.deepEqual(concatBytes([one]), one);
});
