/**
 * The throughput image: one gzip layer of incompressible, deterministic data (~200 MB), written as an
 * OCI image layout by a streaming tar writer (the whole layer never sits in memory) and pushed with skopeo.
 */

import { createHash } from "node:crypto";

const BLOCK = 512;
const FIXED_MTIME = Date.UTC(2024, 0, 1) / 1000;

/**
 * xorshift32 bytes: the same seed always gives the same bytes, and gzip cannot shrink them, so the
 * compressed layer is as big as the data and the pull measures transfer, not the compressor.
 */
export function fillRandom(buf: Uint8Array, state: { seed: number }): void {
  if (buf.byteLength % 4 !== 0 || buf.byteOffset % 4 !== 0) {
    throw new RangeError(
      `Cannot fill ${buf.byteLength} bytes at offset ${buf.byteOffset}: need multiples of 4`,
    );
  }
  const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  let x = state.seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  state.seed = x;
}

function octal(value: number, width: number): string {
  // width − 1 digits and a NUL, as ustar wants.
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

/** A ustar header block for a regular file or a directory (name ≤ 100 bytes). */
export function tarHeader(entry: { name: string; size: number; type: "file" | "directory"; mode?: number }) {
  const enc = new TextEncoder();
  const name = enc.encode(entry.name);
  if (name.byteLength > 100) {
    throw new RangeError(`Cannot write tar entry ${entry.name}: name over 100 bytes`);
  }
  const h = new Uint8Array(BLOCK);
  const put = (offset: number, text: string) => h.set(enc.encode(text), offset);
  h.set(name, 0);
  put(100, octal(entry.mode ?? (entry.type === "directory" ? 0o755 : 0o644), 8));
  put(108, octal(0, 8));
  put(116, octal(0, 8));
  put(124, octal(entry.type === "file" ? entry.size : 0, 12));
  put(136, octal(FIXED_MTIME, 12));
  put(148, "        "); // the checksum is computed with its own field as spaces
  put(156, entry.type === "directory" ? "5" : "0");
  put(257, "ustar\0");
  put(263, "00");
  put(265, "root");
  put(297, "root");
  let sum = 0;
  for (const b of h) sum += b;
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

/** The tar stream of `files` data files of `fileBytes` each under data/, then the end-of-archive blocks. */
export async function* dataTar(
  options: { files: number; fileBytes: number; seed: number; chunkBytes?: number },
): AsyncGenerator<Uint8Array<ArrayBuffer>> {
  const chunk = options.chunkBytes ?? 1 << 20;
  if (options.fileBytes % BLOCK !== 0 || chunk % BLOCK !== 0) {
    throw new RangeError("Cannot write data files: sizes must be multiples of 512 bytes");
  }
  const state = { seed: options.seed };
  yield tarHeader({ name: "data/", size: 0, type: "directory" });
  for (let i = 0; i < options.files; i++) {
    yield tarHeader({
      name: `data/blob-${String(i).padStart(4, "0")}.bin`,
      size: options.fileBytes,
      type: "file",
    });
    for (let left = options.fileBytes; left > 0; left -= chunk) {
      const buf = new Uint8Array(Math.min(chunk, left));
      fillRandom(buf, state);
      yield buf;
    }
  }
  yield new Uint8Array(2 * BLOCK);
}

export interface BigImage {
  /** The OCI layout directory holding the image under the ref name "big". */
  readonly dir: string;
  readonly layerDigest: string;
  /** Compressed bytes of the layer: what a pull transfers. */
  readonly layerBytes: number;
  /** Uncompressed bytes of the layer: what an unpack writes. */
  readonly uncompressedBytes: number;
}

function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Writes the image into an OCI layout at dir; sizeMiB of data in files of `fileBytes` (4 MiB by default;
 * a multiple of 512).
 */
export async function buildBigImage(
  dir: string,
  options: { sizeMiB: number; seed?: number; fileBytes?: number },
): Promise<BigImage> {
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  const fileBytes = options.fileBytes ?? 4 << 20;
  const files = Math.max(1, Math.round((options.sizeMiB << 20) / fileBytes));
  const rawHash = createHash("sha256");
  const gzHash = createHash("sha256");
  let rawBytes = 0;
  let gzBytes = 0;
  const tmp = `${dir}/blobs/layer.tmp`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    const counted = ReadableStream.from(dataTar({ files, fileBytes, seed: options.seed ?? 0x5eed }))
      .pipeThrough(
        new TransformStream<Uint8Array<ArrayBuffer>, BufferSource>({
          transform(c, ctl) {
            rawHash.update(c);
            rawBytes += c.byteLength;
            ctl.enqueue(c);
          },
        }),
      )
      .pipeThrough(new CompressionStream("gzip"));
    for await (const c of counted) {
      gzHash.update(c);
      gzBytes += c.byteLength;
      await file.write(c);
    }
  } finally {
    file.close();
  }
  const layerHex = gzHash.digest("hex");
  await Deno.rename(tmp, `${dir}/blobs/sha256/${layerHex}`);
  const put = async (value: unknown) => {
    const data = new TextEncoder().encode(JSON.stringify(value));
    const hex = sha256Hex(data);
    await Deno.writeFile(`${dir}/blobs/sha256/${hex}`, data);
    return { digest: `sha256:${hex}`, size: data.byteLength };
  };
  const config = await put({
    created: "2024-01-01T00:00:00Z",
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
    rootfs: { type: "layers", diff_ids: [`sha256:${rawHash.digest("hex")}`] },
  });
  const layerDigest = `sha256:${layerHex}`;
  const manifest = await put({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: layerDigest,
      size: gzBytes,
    }],
  });
  await Deno.writeTextFile(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await Deno.writeTextFile(
    `${dir}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...manifest,
        annotations: { "org.opencontainers.image.ref.name": "big" },
      }],
    }),
  );
  return { dir, layerDigest, layerBytes: gzBytes, uncompressedBytes: rawBytes };
}

/** Pushes the layout's "big" image to `reference` (a plain-HTTP registry on 127.0.0.1) with skopeo. */
export async function pushBigImage(image: BigImage, reference: string, signal?: AbortSignal): Promise<void> {
  const out = await new Deno.Command("skopeo", {
    args: [
      "copy",
      "--quiet",
      "--preserve-digests",
      "--dest-tls-verify=false",
      `oci:${image.dir}:big`,
      `docker://${reference}`,
    ],
    stdout: "piped",
    stderr: "piped",
    ...(signal ? { signal } : {}),
  }).output();
  if (!out.success) {
    throw new Error(
      `skopeo could not push the big image to ${reference}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}
