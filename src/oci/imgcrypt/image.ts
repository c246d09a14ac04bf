/**
 * Encrypting and decrypting whole images in a content store, after imgcrypt's cryptImage: every chosen
 * layer of every chosen manifest is rewritten, and the manifests and indexes above a changed layer are
 * written anew (an OCI manifest, as imgcrypt writes) with containerd's gc labels. Works over a BlobStore,
 * so the same code runs in a client (over the Content service, as ctr-enc) and in the daemon.
 */
import { invalidArgument } from "../../base/errors.ts";
import type { BlobStore } from "../blobs.ts";
import { digestOf } from "../digest_of.ts";
import { type Descriptor, MediaType } from "../image.ts";
import { childGcLabels, isIndexType, isLayerType, isManifestType } from "../manifest.ts";
import type { PlatformMatcher } from "../platforms.ts";
import { readBytes } from "../read_bytes.ts";
import type { NamedKey } from "./keys.ts";
import { decryptLayerStream } from "./layer_cipher.ts";
import { encryptLayer, unwrapLayerOptions, withoutEncryptionAnnotations } from "./layer.ts";
import { encryptedLayerType, isEncryptedLayerType, plainLayerType } from "./spec.ts";

export interface CryptImageOptions {
  /** Manifests of an index to touch (by their platform); the others are kept as they are. Default all. */
  readonly platforms?: PlatformMatcher;
  /** Layer indexes to touch, negative ones counted from the top (-1 the last); default all. */
  readonly layers?: readonly number[];
  /** Labels for the blobs written (a client passes none; its lease keeps them). */
  readonly signal?: AbortSignal;
}

type LayerOp = (blobs: BlobStore, layer: Descriptor) => Promise<Descriptor | undefined>;

/** `target` with the chosen layers encrypted for `recipients`; the new root descriptor. */
export async function encryptImage(
  blobs: BlobStore,
  target: Descriptor,
  options: CryptImageOptions & { recipients: readonly NamedKey[] },
): Promise<Descriptor> {
  if (options.recipients.length === 0) throw invalidArgument("Cannot encrypt an image without recipients");
  const op: LayerOp = async (b, layer) => {
    if (isEncryptedLayerType(layer.mediaType)) return undefined;
    const mediaType = encryptedLayerType(layer.mediaType);
    if (!mediaType) {
      throw invalidArgument(
        `Cannot encrypt layer ${layer.digest}: unsupported media type ${layer.mediaType}`,
      );
    }
    const enc = encryptLayer(b.read(layer.digest), layer, options.recipients);
    const written = await b.write(`encrypt-${layer.digest}-${crypto.randomUUID()}`, enc.stream);
    const annotations = await enc.finalize();
    return { mediaType, digest: written.digest, size: written.size, annotations, ...platformOf(layer) };
  };
  return await cryptRoot(blobs, target, op, options);
}

/** `target` with its encrypted layers decrypted with `keys`; the new root descriptor. */
export async function decryptImage(
  blobs: BlobStore,
  target: Descriptor,
  options: CryptImageOptions & { keys: readonly NamedKey[] },
): Promise<Descriptor> {
  const op: LayerOp = async (b, layer) => {
    const mediaType = plainLayerType(layer.mediaType);
    if (!mediaType) return undefined;
    const opts = await unwrapLayerOptions(layer, options.keys);
    const what = `layer ${layer.digest}`;
    // The HMAC is checked at the end of the stream, before the write commits; the store checks the digest.
    const plain = decryptLayerStream(b.read(layer.digest), opts, { verify: true, what });
    const expected = opts.private.digest || undefined;
    const written = await b.write(`decrypt-${layer.digest}`, plain, expected ? { expected } : {});
    const annotations = withoutEncryptionAnnotations(layer.annotations);
    return {
      mediaType,
      digest: written.digest,
      size: written.size,
      ...(Object.keys(annotations).length ? { annotations } : {}),
      ...platformOf(layer),
    };
  };
  return await cryptRoot(blobs, target, op, options);
}

const platformOf = (d: Descriptor) => d.platform ? { platform: d.platform } : {};

async function cryptRoot(
  blobs: BlobStore,
  desc: Descriptor,
  op: LayerOp,
  options: CryptImageOptions,
): Promise<Descriptor> {
  if (isIndexType(desc.mediaType)) return (await cryptIndex(blobs, desc, op, options)) ?? desc;
  if (isManifestType(desc.mediaType)) return (await cryptManifest(blobs, desc, op, options)) ?? desc;
  throw invalidArgument(`Cannot encrypt or decrypt ${desc.digest}: unhandled media type ${desc.mediaType}`);
}

async function readJson(blobs: BlobStore, desc: Descriptor): Promise<Record<string, unknown>> {
  const doc = JSON.parse(new TextDecoder().decode(await readBytes(blobs, desc.digest)));
  if (!doc || typeof doc !== "object") throw invalidArgument(`Manifest ${desc.digest} is not a JSON object`);
  return doc;
}

/** The rewritten index, or undefined when none of its manifests changed. */
async function cryptIndex(
  blobs: BlobStore,
  desc: Descriptor,
  op: LayerOp,
  options: CryptImageOptions,
): Promise<Descriptor | undefined> {
  const index = await readJson(blobs, desc);
  const manifests = (index.manifests ?? []) as Descriptor[];
  let modified = false;
  const next: Descriptor[] = [];
  for (const m of manifests) {
    const chosen = isManifestType(m.mediaType) && (!options.platforms || options.platforms.match(m.platform));
    const changed = chosen ? await cryptManifest(blobs, m, op, options) : undefined;
    if (changed) modified = true;
    next.push(changed ?? m);
  }
  if (!modified) return undefined;
  const doc = { ...index, manifests: next };
  return await writeJson(blobs, doc, desc.mediaType, childGcLabels(next), undefined);
}

/** The rewritten manifest, or undefined when none of its layers changed. */
async function cryptManifest(
  blobs: BlobStore,
  desc: Descriptor,
  op: LayerOp,
  options: CryptImageOptions,
): Promise<Descriptor | undefined> {
  const manifest = await readJson(blobs, desc);
  const layers = (manifest.layers ?? []) as Descriptor[];
  const chosen = new Set(
    (options.layers ?? layers.map((_, i) => i)).map((i) => i < 0 ? layers.length + i : i),
  );
  let modified = false;
  const next: Descriptor[] = [];
  for (const [i, layer] of layers.entries()) {
    options.signal?.throwIfAborted();
    const changed = chosen.has(i) && isLayerType(layer.mediaType) ? await op(blobs, layer) : undefined;
    if (changed) modified = true;
    next.push(changed ?? layer);
  }
  if (!modified) return undefined;
  const config = manifest.config as Descriptor;
  const doc: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config,
    layers: next,
    ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
  };
  return await writeJson(blobs, doc, MediaType.OciManifest, childGcLabels([config, ...next]), desc);
}

async function writeJson(
  blobs: BlobStore,
  doc: Record<string, unknown>,
  mediaType: string,
  labels: Record<string, string>,
  from: Descriptor | undefined,
): Promise<Descriptor> {
  const bytes = new TextEncoder().encode(JSON.stringify(doc, null, 3));
  const digest = digestOf(bytes);
  async function* body() {
    yield bytes;
  }
  await blobs.write(`${mediaType === MediaType.OciManifest ? "manifest" : "index"}-${digest}`, body(), {
    expected: digest,
    size: bytes.length,
    labels,
  });
  return { mediaType, digest, size: bytes.length, ...(from?.platform ? { platform: from.platform } : {}) };
}
