/**
 * Push from the content store to a registry: every blob first (bounded in parallel, mounted from another
 * repository of the same registry when the distribution source label names one), then manifests from the
 * leaves up, the root last under the reference's tag.
 */

import type { ContentStore } from "../content/mod.ts";
import { notFound } from "../../base/errors.ts";
import type { ImageStore } from "../images/mod.ts";
import { parseReference } from "../../oci/reference.ts";
import type { Descriptor } from "../../oci/image.ts";
import type { Resolver } from "../remotes/mod.ts";
import { Limiter } from "./limiter.ts";
import {
  DISTRIBUTION_SOURCE,
  isIndexType,
  isManifestType,
  parseManifest,
  refKey,
} from "../../oci/manifest.ts";
import { allPlatforms, hostPlatform, platformMatcher, type PlatformSpec } from "../../oci/platforms.ts";
import { infoOrUndefined, readAll } from "./store_util.ts";
import type { ProgressFn, TransferEvent } from "./types.ts";

export interface PushDeps {
  readonly content: ContentStore;
  readonly images: ImageStore;
}

export interface PushOptions {
  readonly resolver: Resolver;
  /** Where to push; default the image name. */
  readonly reference?: string;
  /** Manifests of an index to push; default all that are present locally. */
  readonly platforms?: readonly PlatformSpec[];
  readonly allPlatforms?: boolean;
  readonly maxConcurrentUploads?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: ProgressFn;
}

/** Pushes local image `name` and returns the descriptor pushed as the root. */
export async function push(
  deps: PushDeps,
  ns: string,
  name: string,
  options: PushOptions,
): Promise<Descriptor> {
  const { content } = deps;
  const image = await deps.images.get(ns, name);
  const reference = options.reference || image.name;
  const ref = parseReference(reference);
  const pusher = options.resolver.pusher(reference);
  const limiter = new Limiter(options.maxConcurrentUploads || 3);
  const matcher = options.allPlatforms || !options.platforms?.length
    ? allPlatforms
    : platformMatcher(options.platforms ?? [hostPlatform()]);
  const root: Descriptor = {
    mediaType: image.target.mediaType,
    digest: image.target.digest,
    size: image.target.size,
  };

  const blobs = new Map<string, Descriptor>();
  const manifests: { desc: Descriptor; bytes: Uint8Array }[] = [];
  // Depth first, children before parents: the order manifests must be pushed in.
  const walk = async (desc: Descriptor): Promise<void> => {
    const bytes = await readAll(content, ns, desc.digest);
    const parsed = parseManifest(desc, bytes);
    if (parsed.kind === "index") {
      for (const m of parsed.manifests) {
        if (!(isManifestType(m.mediaType) || isIndexType(m.mediaType)) || !matcher.match(m.platform)) {
          continue;
        }
        // An index may list platforms that were never pulled; only the root must be complete.
        if (!(await infoOrUndefined(content, ns, m.digest))) continue;
        await walk(m);
      }
    } else {
      for (const b of [parsed.config, ...parsed.layers]) {
        if (!(await infoOrUndefined(content, ns, b.digest))) {
          throw notFound(`Cannot push "${name}": content ${b.digest} of manifest ${desc.digest} is missing`);
        }
        blobs.set(b.digest, b);
      }
    }
    manifests.push({ desc, bytes });
  };
  await walk(root);

  const emit = (desc: Descriptor, status: TransferEvent["status"], offset: number) =>
    options.onProgress?.({
      ref: refKey(desc),
      digest: desc.digest,
      mediaType: desc.mediaType,
      status,
      offset,
      total: desc.size,
    });
  const host = ref.domain.split(":")[0];
  await Promise.all([...blobs.values()].map((b) => {
    emit(b, "waiting", 0);
    return limiter.run(async () => {
      const info = await content.info(ns, b.digest);
      const sources = info.labels[`${DISTRIBUTION_SOURCE}.${host}`]?.split(",").filter(Boolean) ?? [];
      emit(b, "uploading", 0);
      let sent = 0;
      const counting = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, c) {
          sent += chunk.byteLength;
          emit(b, "uploading", sent);
          c.enqueue(chunk);
        },
      });
      const body = ReadableStream.from(content.read(ns, b.digest, { signal: options.signal })).pipeThrough(
        counting,
      );
      const result = await pusher.push(b, body, { signal: options.signal, mountFrom: sources });
      emit(b, result === "exists" ? "exists" : "done", b.size);
    }, options.signal);
  }));
  for (const [i, m] of manifests.entries()) {
    const last = i === manifests.length - 1;
    emit(m.desc, "uploading", 0);
    const result = await pusher.push(m.desc, m.bytes, {
      signal: options.signal,
      ...(last && ref.tag ? { tag: ref.tag } : {}),
    });
    emit(m.desc, result === "exists" ? "exists" : "done", m.desc.size);
  }
  return root;
}
