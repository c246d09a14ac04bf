import assert from "node:assert/strict";
import zlib from "node:zlib";
import { Buffer } from "node:buffer";
import { headerDictionary } from "./dictionary.ts";
import {
  adler32,
  decodeHeaderBlock,
  encodeHeaderBlock,
  HeaderCompressor,
  HeaderDecompressor,
} from "./header_block.ts";
import { FrameParser, parseControl, SpdySessionError } from "./frames.ts";

const hex = (s: string) => new Uint8Array(Buffer.from(s.replaceAll(" ", ""), "hex"));

// Two SYN_STREAM frames as github.com/moby/spdystream's framer (Go, the peer of every Kubernetes SPDY
// session) wrote them on one connection: streamType "error" on stream 1, then "stdout" on stream 3, the
// second block continuing the first one's zlib stream.
const goSynStream1 = hex(
  "80030001 00000029 00000001 00000000 0000" +
    "78f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff",
);
const goSynStream3 = hex("80030001 00000019 00000003 00000000 0000 c22ac5565c92925f5a02000000ffff");

const limits = { maxControlPayload: 16384, maxDataPayload: 65536 };

function synBlocks(...frames: Uint8Array[]): Uint8Array[] {
  const parser = new FrameParser(limits);
  return frames.flatMap((f) => parser.push(f)).map((raw) => {
    const c = parseControl(raw);
    assert.equal(c.type, 1);
    return (c as { block: Uint8Array }).block;
  });
}

Deno.test("The SPDY/3 dictionary is the spec's 1423 bytes, whose Adler-32 Go's zlib header names", () => {
  assert.equal(headerDictionary.length, 1423);
  // Bytes 2..5 of the first block of goSynStream1: 78 f9 | e3 c6 a7 c2.
  assert.equal(adler32(headerDictionary), 0xe3c6a7c2);
});

Deno.test("HeaderDecompressor reads Go's compressed blocks in one context across frames", async () => {
  const inflater = new HeaderDecompressor(16384);
  try {
    const [b1, b3] = synBlocks(goSynStream1, goSynStream3);
    const h1 = decodeHeaderBlock(await inflater.decompress(b1!), 64);
    const h3 = decodeHeaderBlock(await inflater.decompress(b3!), 64);
    assert.deepEqual([...h1], [["streamtype", ["error"]]]);
    assert.deepEqual([...h3], [["streamtype", ["stdout"]]]);
  } finally {
    inflater.close();
  }
});

Deno.test("HeaderCompressor output starts with a zlib header that declares the SPDY dictionary", async () => {
  const deflater = new HeaderCompressor();
  try {
    const first = await deflater.compress(encodeHeaderBlock([["streamtype", "error"]]));
    assert.deepEqual([...first.subarray(0, 6)], [0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2]);
    const second = await deflater.compress(encodeHeaderBlock([]));
    // The second block continues the stream: no second zlib header.
    assert.notEqual(second[0], 0x78);
  } finally {
    deflater.close();
  }
});

Deno.test("Blocks compressed by HeaderCompressor round-trip through node:zlib with the dictionary", async () => {
  const deflater = new HeaderCompressor();
  const blocks = [
    encodeHeaderBlock([["streamType", "error"], ["port", "8080"]]),
    encodeHeaderBlock([]),
    encodeHeaderBlock([["x-many", ["a", "b", "c"]], ["streamtype", "stdout"]]),
  ];
  // An independent reader: node:zlib's own inflate stream, fed the compressed blocks in order.
  const inflate = zlib.createInflate({ dictionary: headerDictionary });
  const out: Uint8Array[] = [];
  inflate.on("data", (c: Uint8Array) => out.push(c));
  try {
    for (const block of blocks) {
      const compressed = await deflater.compress(block);
      out.length = 0;
      await new Promise<void>((resolve) => {
        inflate.write(compressed);
        inflate.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve());
      });
      assert.deepEqual(new Uint8Array(Buffer.concat(out)), block);
    }
    const last = decodeHeaderBlock(blocks[2]!, 64);
    assert.deepEqual(last.get("x-many"), ["a", "b", "c"]);
    assert.deepEqual(decodeHeaderBlock(blocks[0]!, 64).get("streamtype"), ["error"]);
  } finally {
    deflater.close();
    inflate.close();
  }
});

Deno.test("HeaderDecompressor ends the session on a block that inflates past its limit", async () => {
  const deflater = new HeaderCompressor();
  const inflater = new HeaderDecompressor(1024);
  try {
    const big = encodeHeaderBlock([["x-big", "a".repeat(100_000)]]);
    const compressed = await deflater.compress(big);
    assert.ok(compressed.length < 1024, `compressed to ${compressed.length} bytes`);
    await assert.rejects(inflater.decompress(compressed), SpdySessionError);
    // The context is now out of step with the peer's: every later block fails too.
    await assert.rejects(
      inflater.decompress(await deflater.compress(encodeHeaderBlock([]))),
      SpdySessionError,
    );
  } finally {
    deflater.close();
    inflater.close();
  }
});

Deno.test("HeaderDecompressor ends the session on bytes that are not zlib", async () => {
  const inflater = new HeaderDecompressor(1024);
  try {
    await assert.rejects(inflater.decompress(hex("00112233445566778899")), SpdySessionError);
  } finally {
    inflater.close();
  }
});

Deno.test("decodeHeaderBlock rejects truncated blocks, trailing bytes and too many pairs", () => {
  const good = encodeHeaderBlock([["a", "1"], ["b", "2"]]);
  assert.throws(() => decodeHeaderBlock(good.subarray(0, good.length - 1), 64), /truncated/);
  assert.throws(() => decodeHeaderBlock(new Uint8Array([...good, 0]), 64), /after the last pair/);
  assert.throws(() => decodeHeaderBlock(good, 1), /2 pairs, more than the limit of 1/);
  // A length field larger than the block is caught before any allocation.
  const lying = new Uint8Array([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
  assert.throws(() => decodeHeaderBlock(lying, 64), /truncated/);
});

Deno.test("HeaderDecompressor.close() fails the blocks still to come instead of leaving them pending", async () => {
  const deflater = new HeaderCompressor();
  const inflater = new HeaderDecompressor(1 << 20);
  try {
    const compressed = await deflater.compress(encodeHeaderBlock([["x", "y".repeat(50_000)]]));
    const pending = inflater.decompress(compressed);
    inflater.close();
    await assert.rejects(pending, /closed/);
  } finally {
    deflater.close();
  }
});
