import assert from "node:assert/strict";
import { GoawayFilter } from "./goaway_filter.ts";

const prefaceBytes = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

function frame(type: number, payload: number[], stream = 0): Uint8Array {
  const len = payload.length;
  return new Uint8Array([
    (len >> 16) & 0xff,
    (len >> 8) & 0xff,
    len & 0xff,
    type,
    0,
    (stream >>> 24) & 0x7f,
    (stream >>> 16) & 0xff,
    (stream >>> 8) & 0xff,
    stream & 0xff,
    ...payload,
  ]);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const settings = frame(0x4, [0, 3, 0, 0, 0, 100]);
const headers = frame(0x1, [1, 2, 3, 4], 1);
const goaway = frame(0x7, [0, 0, 0, 0, 0, 0, 0, 8]);
const data = frame(0x0, [9, 9, 9], 1);

Deno.test("GoawayFilter drops the client's GOAWAY frames and passes every other byte", () => {
  const input = concat(prefaceBytes, settings, headers, goaway, data);
  const f = new GoawayFilter();
  assert.deepEqual(f.push(input), concat(prefaceBytes, settings, headers, data));
  assert.equal(f.dropped, 1);
});

Deno.test("GoawayFilter finds frame boundaries when chunks split headers and payloads anywhere", () => {
  const input = concat(prefaceBytes, settings, goaway, headers, goaway, data);
  const expected = concat(prefaceBytes, settings, headers, data);
  for (let size = 1; size <= 13; size++) {
    const f = new GoawayFilter();
    const out: Uint8Array[] = [];
    for (let i = 0; i < input.length; i += size) out.push(f.push(input.subarray(i, i + size)));
    assert.deepEqual(concat(...out), expected, `chunk size ${size}`);
    assert.equal(f.dropped, 2);
  }
});
