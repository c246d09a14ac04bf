/**
 * Export of images as an OCI image layout tarball, after containerd 1.6's archive exporter: blobs under
 * blobs/<alg>/<hex>, oci-layout, an index.json naming every image (io.containerd.image.name with the
 * full name, org.opencontainers.image.ref.name with its tag), and a docker manifest.json for `docker load`.
 */

// Types only: tar-stream itself is loaded on first use (~5 ms of every start of a CLI verb otherwise).
import { writeTar } from "./tar_writer.ts";
import type tar from "tar-stream";
import { notFound } from "../../base/errors.ts";
import { familiarString, parseReference } from "../../oci/reference.ts";
import { type Descriptor, MediaType } from "../../oci/image.ts";
import type { BlobStore, ImageRecords } from "../../oci/blobs.ts";
import { ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, ociReferenceName } from "./import.ts";
import { readBytes } from "../../oci/read_bytes.ts";
import { isIndexType, isManifestType, parseManifest } from "../../oci/manifest.ts";
import { allPlatforms, hostPlatform, platformMatcher, type PlatformSpec } from "../../oci/platforms.ts";

export interface ExportOptions {
  /** Manifests of an index to include; default the host platform's. */
  readonly platforms?: readonly PlatformSpec[];
  readonly allPlatforms?: boolean;
  /** Leave out manifest.json (ctr --skip-manifest-json). */
  readonly skipDockerManifest?: boolean;
  readonly signal?: AbortSignal;
}

const MTIME = new Date(0);

/** Writes the images `names` as one OCI layout tarball to `sink`. */
export async function exportArchive(
  stores: { blobs: BlobStore; records: ImageRecords },
  names: readonly string[],
  sink: WritableStream<Uint8Array>,
  options: ExportOptions = {},
): Promise<void> {
  const { blobs, records } = stores;
  const matcher = options.allPlatforms
    ? allPlatforms
    : platformMatcher(options.platforms?.length ? options.platforms : [hostPlatform()]);
  const included = new Map<string, Descriptor>();
  const indexEntries: Descriptor[] = [];
  const dockerEntries = new Map<string, { Config: string; RepoTags: string[]; Layers: string[] }>();

  const walk = async (desc: Descriptor, names: string[]): Promise<void> => {
    if (included.has(desc.digest) && !isManifestType(desc.mediaType)) return;
    if (!(await blobs.info(desc.digest))) {
      throw notFound(`Cannot export: content ${desc.digest} (${desc.mediaType}) is missing`);
    }
    included.set(desc.digest, desc);
    if (!isIndexType(desc.mediaType) && !isManifestType(desc.mediaType)) return;
    const parsed = parseManifest(desc, await readBytes(blobs, desc.digest));
    if (parsed.kind === "index") {
      const kept = parsed.manifests.filter((m) => matcher.match(m.platform));
      // With one platform, the docker manifest.json names the best match only.
      for (const m of kept) await walk(m, kept.length === 1 || options.allPlatforms ? names : []);
      return;
    }
    for (const b of [parsed.config, ...parsed.layers]) await walk(b, []);
    if (names.length > 0) {
      const entry = dockerEntries.get(desc.digest) ?? {
        Config: blobPath(parsed.config.digest),
        RepoTags: [],
        Layers: parsed.layers.map((l) => blobPath(l.digest)),
      };
      for (const n of names) {
        const tagged = familiarTag(n);
        if (tagged && !entry.RepoTags.includes(tagged)) entry.RepoTags.push(tagged);
      }
      dockerEntries.set(desc.digest, entry);
    }
  };

  for (const name of names) {
    const img = await records.get(name);
    const target: Descriptor = {
      mediaType: img.target.mediaType,
      digest: img.target.digest,
      size: img.target.size,
      annotations: { [ANNOTATION_IMAGE_NAME]: img.name, [ANNOTATION_REF_NAME]: ociReferenceName(img.name) },
    };
    indexEntries.push(target);
    await walk(target, [img.name]);
  }

  await writeTar(sink, async (pack) => {
    await entry(pack, { name: "blobs/", type: "directory", mode: 0o755, mtime: MTIME });
    await entry(pack, { name: "blobs/sha256/", type: "directory", mode: 0o755, mtime: MTIME });
    for (const d of [...included.values()].sort((a, b) => (a.digest < b.digest ? -1 : 1))) {
      options.signal?.throwIfAborted();
      await blobEntry(pack, blobPath(d.digest), d.size, blobs.read(d.digest));
    }
    const enc = new TextEncoder();
    await entry(
      pack,
      { name: "oci-layout", mode: 0o444, mtime: MTIME },
      enc.encode(JSON.stringify({ imageLayoutVersion: "1.0.0" })),
    );
    const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: indexEntries };
    await entry(pack, { name: "index.json", mode: 0o444, mtime: MTIME }, enc.encode(JSON.stringify(index)));
    if (!options.skipDockerManifest && dockerEntries.size > 0) {
      await entry(
        pack,
        { name: "manifest.json", mode: 0o444, mtime: MTIME },
        enc.encode(JSON.stringify([...dockerEntries.values()])),
      );
    }
  });
}

function blobPath(digest: string): string {
  return `blobs/${digest.replace(":", "/")}`;
}

function familiarTag(name: string): string | undefined {
  try {
    const ref = parseReference(name);
    if (ref.tag === undefined) return undefined;
    return familiarString(parseReference(`${ref.name}:${ref.tag}`));
  } catch {
    return undefined;
  }
}

function entry(
  pack: tar.Pack,
  header: Partial<tar.Header> & { name: string },
  body?: Uint8Array,
): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry(header as tar.Header, body ?? "", (err) => (err ? reject(err) : resolve()));
  });
}

async function blobEntry(
  pack: tar.Pack,
  name: string,
  size: number,
  data: AsyncIterable<Uint8Array>,
): Promise<void> {
  let done!: Promise<void>;
  const stream = await new Promise<NodeJS.WritableStream>((resolve) => {
    done = new Promise((ok, fail) => {
      resolve(
        pack.entry(
          { name, size, mode: 0o444, mtime: MTIME } as tar.Header,
          (err) => (err ? fail(err) : ok()),
        ),
      );
    });
  });
  for await (const chunk of data) {
    if (!stream.write(chunk)) await new Promise((r) => stream.once("drain", r));
  }
  stream.end();
  await done;
}
