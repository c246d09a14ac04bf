import assert from "node:assert/strict";
// @ts-types="@types/tar-stream"
import tar from "tar-stream";
import { Buffer } from "node:buffer";
import { dataTar, fillRandom, tarHeader } from "./big_image.ts";

Deno.test("fillRandom() gives the same bytes for the same seed, different bytes for another, and does not compress", async () => {
  const a = new Uint8Array(1 << 16);
  const b = new Uint8Array(1 << 16);
  const c = new Uint8Array(1 << 16);
  fillRandom(a, { seed: 7 });
  fillRandom(b, { seed: 7 });
  fillRandom(c, { seed: 8 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const gz = await new Response(new Blob([a]).stream().pipeThrough(new CompressionStream("gzip")))
    .arrayBuffer();
  assert.ok(gz.byteLength > a.byteLength * 0.99, `compressed to ${gz.byteLength} of ${a.byteLength}`);
  assert.throws(() => fillRandom(new Uint8Array(6), { seed: 1 }), /multiples of 4/);
});

Deno.test("tarHeader() writes a ustar header whose checksum the tar reader accepts", () => {
  const h = tarHeader({ name: "data/x.bin", size: 1234, type: "file" });
  assert.equal(h.byteLength, 512);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  assert.equal(parseInt(new TextDecoder().decode(h.subarray(148, 154)), 8), sum);
  assert.throws(() => tarHeader({ name: "x".repeat(101), size: 0, type: "file" }), /over 100 bytes/);
});

Deno.test("dataTar() is a tar archive that tar-stream lists with the sizes and content it promised", async () => {
  const chunks: Uint8Array[] = [];
  for await (const c of dataTar({ files: 3, fileBytes: 8192, seed: 1, chunkBytes: 4096 })) chunks.push(c);
  const bytes = new Uint8Array(await new Blob(chunks as BlobPart[]).arrayBuffer());
  const extract = tar.extract();
  const seen: { name: string; size: number; type: string }[] = [];
  const done = new Promise<void>((resolve, reject) => {
    extract.on("entry", (header, stream, next) => {
      let size = 0;
      stream.on("data", (d: Buffer) => size += d.length);
      stream.on("end", () => {
        seen.push({ name: header.name, size, type: header.type ?? "" });
        next();
      });
      stream.resume();
    });
    extract.on("finish", resolve);
    extract.on("error", reject);
  });
  extract.end(Buffer.from(bytes));
  await done;
  assert.deepEqual(seen, [
    { name: "data/", size: 0, type: "directory" },
    { name: "data/blob-0000.bin", size: 8192, type: "file" },
    { name: "data/blob-0001.bin", size: 8192, type: "file" },
    { name: "data/blob-0002.bin", size: 8192, type: "file" },
  ]);
});
