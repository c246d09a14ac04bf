/**
 * gzip and brotli for Connect's `acceptCompression`, as connect-node offers them, but with node:zlib loaded
 * on first use: most clients never compress, and the daemon shouldn't pay for zlib at start-up.
 */

import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";

type Zlib = typeof import("node:zlib");
let zlib: Promise<Zlib> | undefined;
const load = () => zlib ??= import("node:zlib");

type ZlibFn = (
  bytes: Uint8Array,
  options: { maxOutputLength?: number },
  cb: (err: Error | null, out: Uint8Array) => void,
) => void;

function codec(name: string, pick: (z: Zlib) => { compress: ZlibFn; decompress: ZlibFn }): Compression {
  const run = async (
    which: "compress" | "decompress",
    bytes: Uint8Array,
    max?: number,
  ): Promise<Uint8Array<ArrayBuffer>> => {
    const fn = pick(await load())[which];
    return await new Promise<Uint8Array<ArrayBuffer>>((resolve, reject) => {
      fn(bytes, max ? { maxOutputLength: max } : {}, (err, out) => {
        if (!err) return resolve(new Uint8Array(out));
        const code = (err as { code?: string }).code;
        if (code === "ERR_BUFFER_TOO_LARGE") {
          reject(
            new ConnectError(
              `message is larger than configured readMaxBytes ${max} after decompression`,
              Code.ResourceExhausted,
            ),
          );
        } else {
          reject(new ConnectError("decompression failed", Code.InvalidArgument, undefined, undefined, err));
        }
      });
    });
  };
  return {
    name,
    compress: (bytes) => run("compress", bytes),
    decompress: (bytes, readMaxBytes) =>
      bytes.length === 0 ? Promise.resolve(new Uint8Array(0)) : run("decompress", bytes, readMaxBytes),
  };
}

export const compressionGzip: Compression = codec(
  "gzip",
  (z) => ({ compress: z.gzip, decompress: z.gunzip }),
);
export const compressionBrotli: Compression = codec(
  "br",
  (z) => ({ compress: z.brotliCompress, decompress: z.brotliDecompress }),
);
