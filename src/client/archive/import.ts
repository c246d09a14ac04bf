/**
 * Import of image tarballs, after containerd 1.6's archive importer and Client.Import: an OCI image
 * layout (oci-layout, index.json, blobs/<alg>/<hex>) is taken as is; a `docker save` tarball
 * (manifest.json with Config, RepoTags, Layers) becomes a Docker schema 2 manifest per image under a new
 * index. Image records are named from the index's annotations, as ctr names them.
 */

import { Readable } from "node:stream";
import type { ReadableStream as NodeWebReadableStream } from "node:stream/web";
import { digestOf } from "../../oci/digest_of.ts";
import { invalidArgument, notFound } from "../../base/errors.ts";
import { parseReference } from "../../oci/reference.ts";
import { type Descriptor, MediaType } from "../../oci/image.ts";
import type { BlobStore, ImageRecord, ImageRecords } from "../../oci/blobs.ts";
import { collect, readBytes } from "../../oci/read_bytes.ts";
import { childGcLabels, childrenOf, isIndexType, isManifestType, parseManifest } from "../../oci/manifest.ts";
import { allPlatforms, hostPlatform, platformMatcher, type PlatformSpec } from "../../oci/platforms.ts";

export const ANNOTATION_IMAGE_NAME = "io.containerd.image.name";
export const ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name";

const DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/** Files up to this size are kept in memory until we know what they are. */
const SMALL_FILE = 1 << 20;

export interface ImportOptions {
  /**
   * ctr's --base-name: bare OCI ref names become `<base>:<name>` and full names not under the base are
   * skipped. Without it bare names become `import-<date>:<name>`.
   */
  readonly baseName?: string;
  /** Also record the archive's index under this name (ctr --index-name). */
  readonly indexName?: string;
  /** Also record every manifest as `<base>@<digest>` (ctr --digests). */
  readonly digests?: boolean;
  readonly platforms?: readonly PlatformSpec[];
  readonly allPlatforms?: boolean;
  readonly signal?: AbortSignal;
}

export interface ImportResult {
  /** The archive's index (the one in an OCI layout, or the one made for a docker tarball). */
  readonly index: Descriptor;
  readonly images: readonly ImageRecord[];
}

interface Entry {
  readonly digest: string;
  readonly size: number;
  /** The first bytes, to recognise compression. */
  readonly magic: Uint8Array;
  /** Kept for small files that are not content-addressed yet. */
  readonly bytes?: Uint8Array;
  stored: boolean;
}

/** Imports the tarball `source` into `blobs` and names its images in `records`. */
export async function importArchive(
  stores: { blobs: BlobStore; records: ImageRecords },
  source: ReadableStream<Uint8Array>,
  options: ImportOptions = {},
): Promise<ImportResult> {
  const { blobs } = stores;
  const files = new Map<string, Entry>();
  const symlinks = new Map<string, string>();
  let ociLayout: { imageLayoutVersion?: string } | undefined;
  let dockerManifests: { Config: string; RepoTags?: string[] | null; Layers: string[] }[] | undefined;

  // tar-stream is loaded on first use: ~5 ms of every start of a CLI verb that links this module.
  const extract = (await import("tar-stream")).default.extract();
  const feed = Readable.fromWeb(source as unknown as NodeWebReadableStream<Uint8Array>);
  feed.on("error", (err) => extract.destroy(err));
  feed.pipe(extract);
  for await (const entry of extract) {
    options.signal?.throwIfAborted();
    const h = entry.header;
    const name = cleanName(h.name);
    if (h.type === "symlink" && h.linkname) {
      symlinks.set(name, joinPath(dirname(name), h.linkname));
    }
    if (h.type !== "file" && h.type !== "contiguous-file") {
      entry.resume();
      continue;
    }
    const size = h.size ?? 0;
    const blobMatch = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(name);
    if (blobMatch || size > SMALL_FILE) {
      const expected = blobMatch ? `${blobMatch[1]}:${blobMatch[2]}` : undefined;
      let magic: Uint8Array = new Uint8Array();
      const chunks = (async function* () {
        for await (const c of entry as AsyncIterable<Uint8Array>) {
          if (magic.byteLength === 0) magic = c.slice(0, 4);
          yield c;
        }
      })();
      const stored = await blobs.write(`tar-${name}`, chunks, { expected, size });
      files.set(name, { ...stored, magic, stored: true });
      continue;
    }
    const bytes = await collect(entry as AsyncIterable<Uint8Array>);
    if (name === "oci-layout") ociLayout = parseJson(bytes, name);
    else if (name === "manifest.json") dockerManifests = parseJson(bytes, name);
    files.set(name, {
      digest: digestOf(bytes),
      size: bytes.byteLength,
      magic: bytes.slice(0, 4),
      bytes,
      stored: false,
    });
  }

  const blobOf = async (path: string): Promise<{ digest: string; size: number; magic: Uint8Array }> => {
    const f = files.get(path) ?? files.get(symlinks.get(path) ?? "");
    if (!f) throw notFound(`Cannot import: the archive has no file ${path}`);
    if (!f.stored) {
      await blobs.write(`tar-${path}`, once(f.bytes!), { expected: f.digest, size: f.size });
      f.stored = true;
    }
    return f;
  };

  let index: Descriptor;
  if (ociLayout !== undefined) {
    if (ociLayout.imageLayoutVersion !== "1.0.0") {
      throw invalidArgument(
        `Cannot import: unsupported OCI layout version ${JSON.stringify(ociLayout.imageLayoutVersion)}`,
      );
    }
    if (!files.has("index.json")) throw invalidArgument("Cannot import: the OCI layout has no index.json");
    const f = await blobOf("index.json");
    index = { mediaType: MediaType.OciIndex, digest: f.digest, size: f.size };
  } else if (dockerManifests !== undefined) {
    index = await dockerIndex(blobs, dockerManifests, blobOf);
  } else {
    throw invalidArgument("Cannot import: unrecognized image format (neither oci-layout nor manifest.json)");
  }
  const images = await nameImages(stores, index, options);
  return { index, images };
}

/** Writes a Docker schema 2 manifest for each entry of manifest.json, and an index naming them by tag. */
async function dockerIndex(
  blobs: BlobStore,
  entries: readonly { Config: string; RepoTags?: string[] | null; Layers: string[] }[],
  blobOf: (path: string) => Promise<{ digest: string; size: number; magic: Uint8Array }>,
): Promise<Descriptor> {
  const manifests: Descriptor[] = [];
  for (const m of entries) {
    const config = await blobOf(m.Config);
    const layers = [];
    for (const path of m.Layers) {
      const l = await blobOf(path);
      layers.push({ mediaType: layerType(l.magic), digest: l.digest, size: l.size });
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, digest: config.digest, size: config.size },
      layers,
    };
    const desc = await putJson(blobs, manifest, MediaType.DockerManifest);
    const platform = await configPlatform(blobs, config.digest);
    const withPlatform: Descriptor = platform ? { ...desc, platform } : desc;
    if (!m.RepoTags?.length) {
      manifests.push(withPlatform);
      continue;
    }
    for (const tag of m.RepoTags) {
      const normalized = parseReference(tag).toString();
      manifests.push({
        ...withPlatform,
        annotations: {
          [ANNOTATION_IMAGE_NAME]: normalized,
          [ANNOTATION_REF_NAME]: ociReferenceName(normalized),
        },
      });
    }
  }
  return await putJson(
    blobs,
    { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests },
    MediaType.OciIndex,
  );
}

/** Names images after the index entries (ctr's rules), labels what the platform filter keeps, records them. */
async function nameImages(
  stores: { blobs: BlobStore; records: ImageRecords },
  index: Descriptor,
  options: ImportOptions,
): Promise<ImageRecord[]> {
  const { blobs, records } = stores;
  const matcher = options.allPlatforms
    ? allPlatforms
    : platformMatcher(options.platforms?.length ? options.platforms : [hostPlatform()]);
  const prefix = options.baseName || `import-${new Date().toISOString().slice(0, 10)}`;
  const out: ImageRecord[] = [];
  if (options.indexName) out.push({ name: options.indexName, target: index });

  const walk = async (desc: Descriptor, top: boolean): Promise<void> => {
    if (!isIndexType(desc.mediaType) && !isManifestType(desc.mediaType)) return;
    const parsed = parseManifest(desc, await readBytes(blobs, desc.digest));
    let children = childrenOf(parsed);
    if (parsed.kind === "index") {
      if (top) {
        for (const m of parsed.manifests) {
          const name = imageName(m.annotations ?? {}, options.baseName);
          if (name) out.push({ name, target: strip(m) });
          if (options.digests) out.push({ name: `${prefix}@${m.digest}`, target: strip(m) });
        }
      }
      children = children.filter((m) => matcher.match(m.platform));
    }
    for (const ch of children) {
      if (!(await blobs.info(ch.digest))) {
        throw notFound(`Cannot import: content ${ch.digest} of ${desc.digest} is not in the archive`);
      }
    }
    await blobs.label(desc.digest, childGcLabels(children));
    for (const ch of children) await walk(ch, false);
  };
  await walk(index, true);
  for (const img of out) await records.put(img);
  return out;

  function imageName(annotations: Readonly<Record<string, string>>, base: string | undefined): string {
    const full = annotations[ANNOTATION_IMAGE_NAME];
    if (full) return full;
    const ref = annotations[ANNOTATION_REF_NAME];
    if (!ref) return "";
    if (/[/:@]/.test(ref)) return base === undefined || base === "" || hasImagePrefix(ref, base) ? ref : "";
    return `${prefix}:${ref}`;
  }
}

function hasImagePrefix(s: string, prefix: string): boolean {
  return s.startsWith(prefix) && (s.length === prefix.length || "/:@".includes(s[prefix.length]!));
}

/** The OCI ref name containerd writes for an image name: its tag (the "object" of the reference). */
export function ociReferenceName(name: string): string {
  try {
    const ref = parseReference(name);
    if (ref.tag !== undefined) return ref.digest ? `${ref.tag}@${ref.digest}` : ref.tag;
    return ref.digest ? `@${ref.digest}` : name;
  } catch {
    return name;
  }
}

function strip(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

function layerType(magic: Uint8Array): string {
  if (magic[0] === 0x1f && magic[1] === 0x8b) return MediaType.DockerLayerGzip;
  if (magic[0] === 0x28 && magic[1] === 0xb5 && magic[2] === 0x2f && magic[3] === 0xfd) {
    return DOCKER_LAYER_ZSTD;
  }
  return DOCKER_LAYER;
}

async function configPlatform(blobs: BlobStore, digest: string): Promise<Descriptor["platform"] | undefined> {
  try {
    const c = JSON.parse(new TextDecoder().decode(await readBytes(blobs, digest)));
    if (typeof c.os !== "string" || typeof c.architecture !== "string") return undefined;
    return { os: c.os, architecture: c.architecture, ...(c.variant ? { variant: c.variant } : {}) };
  } catch {
    return undefined;
  }
}

async function putJson(blobs: BlobStore, value: unknown, mediaType: string): Promise<Descriptor> {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  const digest = digestOf(bytes);
  await blobs.write(`import-${digest}`, once(bytes), { expected: digest, size: bytes.byteLength });
  return { mediaType, digest, size: bytes.byteLength };
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

function parseJson<T>(bytes: Uint8Array, name: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch (err) {
    throw invalidArgument(`Cannot import: ${name} is not valid JSON (${(err as Error).message})`);
  }
}

function cleanName(name: string): string {
  return name.replace(/^(\.\/)+/, "").replace(/^\/+/, "").replace(/\/+$/, "");
}

function dirname(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "" : p.slice(0, i);
}

function joinPath(dir: string, rel: string): string {
  const parts = (dir ? dir.split("/") : []).concat(rel.split("/"));
  const out: string[] = [];
  for (const p of parts) {
    if (p === "" || p === ".") continue;
    if (p === "..") out.pop();
    else out.push(p);
  }
  return out.join("/");
}
