/**
 * Pushes blobs and manifests into one repository (distribution spec "push"): HEAD to skip what exists,
 * cross-repository mount, POST then a monolithic PUT or PATCH chunks, and manifests PUT by tag or digest.
 */

import { BerthError, failedPrecondition, invalidArgument, notFound } from "../../base/errors.ts";
import { validateDigest } from "../../oci/digest.ts";
import { repositoryScope } from "./auth.ts";
import {
  type HostTransport,
  type RepositoryAccess,
  type RequestContext,
  responseError,
} from "./transport.ts";
import { type Descriptor, isManifestMediaType, MAX_MANIFEST_SIZE } from "../../oci/image.ts";
import { readLimited } from "./util.ts";
import { sha256Hex } from "../../base/hash.ts";
import { concatBytes } from "../../base/bytes.ts";

export interface PushOptions {
  readonly signal?: AbortSignal;
  /** For a manifest or index: store it under this tag rather than only by digest. */
  readonly tag?: string;
  /** Repositories on the same registry (`berth/single`) to mount the blob from instead of uploading. */
  readonly mountFrom?: readonly string[];
  /** Upload in PATCH chunks of this many bytes; without it, one monolithic PUT. */
  readonly chunkSize?: number;
  /** Deadline for each request's response headers. */
  readonly timeoutMs?: number;
}

export type PushResult = "pushed" | "exists" | "mounted";

export class Pusher {
  readonly #access: RepositoryAccess;

  constructor(access: RepositoryAccess) {
    this.#access = access;
  }

  /** Whether the registry has `desc` (for a manifest with `tag`: whether the tag points at it). */
  async exists(
    desc: Descriptor,
    options: { signal?: AbortSignal; tag?: string; timeoutMs?: number } = {},
  ): Promise<boolean> {
    validateDigest(desc.digest);
    const t = await this.#host();
    const { ref } = this.#access;
    const manifest = isManifestMediaType(desc.mediaType);
    const path = manifest
      ? `/${ref.path}/manifests/${options.tag ?? desc.digest}`
      : `/${ref.path}/blobs/${desc.digest}`;
    const ctx = { verb: `push ${desc.digest} to`, ref: this.#access.input };
    const res = await t.request({
      method: "HEAD",
      url: path,
      headers: manifest ? { accept: desc.mediaType } : {},
      scopes: [repositoryScope(ref.path, true)],
      signal: options.signal,
      timeoutMs: options.timeoutMs,
    }, ctx);
    await res.body?.cancel();
    if (res.status === 404) return false;
    if (!res.ok) throw await responseError(res, ctx, t.host.host, manifest ? "manifest" : "blob");
    if (options.tag !== undefined) return res.headers.get("docker-content-digest") === desc.digest;
    return true;
  }

  /**
   * Pushes `desc` with its content. Returns "exists" when the registry already had it (the content is
   * then not read), "mounted" when another repository lent it, else "pushed".
   */
  async push(
    desc: Descriptor,
    content: Uint8Array | ReadableStream<Uint8Array>,
    options: PushOptions = {},
  ): Promise<PushResult> {
    try {
      if (await this.exists(desc, options)) {
        if (content instanceof ReadableStream) await content.cancel();
        return "exists";
      }
      const t = await this.#host();
      if (isManifestMediaType(desc.mediaType)) {
        await this.#putManifest(t, desc, content, options);
        return "pushed";
      }
      return await this.#pushBlob(t, desc, content, options);
    } catch (err) {
      if (content instanceof ReadableStream && !content.locked) await content.cancel().catch(() => {});
      throw err;
    }
  }

  async #host(): Promise<HostTransport> {
    const [t] = await this.#access.hosts("push");
    if (!t) throw notFound(`Cannot push to "${this.#access.input}": no host has the push capability`);
    return t;
  }

  async #putManifest(
    t: HostTransport,
    desc: Descriptor,
    content: Uint8Array | ReadableStream<Uint8Array>,
    options: PushOptions,
  ): Promise<void> {
    const { ref, input } = this.#access;
    const ctx = { verb: `push ${desc.digest} to`, ref: input };
    const bytes = content instanceof ReadableStream
      ? await readLimited(
        new Response(content),
        MAX_MANIFEST_SIZE,
        () =>
          invalidArgument(
            `Cannot push ${desc.digest} to "${input}": manifest larger than ${MAX_MANIFEST_SIZE} bytes`,
          ),
      )
      : content;
    if (
      bytes.byteLength !== desc.size ||
      (desc.digest.startsWith("sha256:") && `sha256:${await sha256Hex(bytes)}` !== desc.digest)
    ) {
      throw failedPrecondition(
        `Cannot push ${desc.digest} to "${input}": content does not match its descriptor`,
      );
    }
    const res = await t.request({
      method: "PUT",
      url: `/${ref.path}/manifests/${options.tag ?? desc.digest}`,
      headers: { "content-type": desc.mediaType },
      body: bytes,
      scopes: [repositoryScope(ref.path, true)],
      signal: options.signal,
      timeoutMs: options.timeoutMs,
    }, ctx);
    if (res.status !== 201 && !res.ok) throw await responseError(res, ctx, t.host.host, "manifest");
    await res.body?.cancel();
  }

  async #pushBlob(
    t: HostTransport,
    desc: Descriptor,
    content: Uint8Array | ReadableStream<Uint8Array>,
    options: PushOptions,
  ): Promise<PushResult> {
    const { ref, input } = this.#access;
    const ctx: RequestContext = { verb: `push ${desc.digest} to`, ref: input };
    const mountFrom = (options.mountFrom ?? []).filter((from) => from !== ref.path);
    const scopes = [
      repositoryScope(ref.path, true),
      ...mountFrom.map((from) => repositoryScope(from, false)),
    ];
    const common = { scopes, signal: options.signal, timeoutMs: options.timeoutMs };
    let location: URL | undefined;
    // A mount the registry cannot do answers 202 with a fresh upload session, used as is.
    for (const from of mountFrom.length > 0 ? mountFrom : [undefined]) {
      const query = from === undefined
        ? ""
        : `?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`;
      const res = await t.request(
        { method: "POST", url: `/${ref.path}/blobs/uploads/${query}`, ...common },
        ctx,
      );
      if (res.status === 201 && from !== undefined) {
        await res.body?.cancel();
        return "mounted";
      }
      if (res.status !== 202) throw await responseError(res, ctx, t.host.host, "blob upload");
      await res.body?.cancel();
      location = uploadLocation(res, t, ctx);
      break;
    }
    if (!location) throw failedPrecondition(`Cannot push ${desc.digest} to "${input}": no upload session`);

    const chunkSize = options.chunkSize;
    if (chunkSize !== undefined && chunkSize > 0) {
      let offset = 0;
      for await (const chunk of chunks(content, chunkSize)) {
        const res = await t.request({
          method: "PATCH",
          url: location,
          headers: {
            "content-type": "application/octet-stream",
            "content-range": `${offset}-${offset + chunk.byteLength - 1}`,
          },
          body: chunk,
          ...common,
        }, ctx);
        if (res.status !== 202) throw await responseError(res, ctx, t.host.host, "blob upload");
        await res.body?.cancel();
        location = uploadLocation(res, t, ctx);
        offset += chunk.byteLength;
      }
      if (offset !== desc.size) {
        throw failedPrecondition(
          `Cannot push ${desc.digest} to "${input}": read ${offset} bytes, expected ${desc.size}`,
        );
      }
      await this.#finish(t, location, desc, new Uint8Array(), common, ctx);
      return "pushed";
    }
    await this.#finish(t, location, desc, content, common, ctx);
    return "pushed";
  }

  async #finish(
    t: HostTransport,
    location: URL,
    desc: Descriptor,
    body: Uint8Array | ReadableStream<Uint8Array>,
    common: { scopes: string[]; signal?: AbortSignal; timeoutMs?: number },
    ctx: RequestContext,
  ): Promise<void> {
    const url = new URL(location);
    url.searchParams.set("digest", desc.digest);
    const res = await t.request({
      method: "PUT",
      url,
      headers: { "content-type": "application/octet-stream" },
      body,
      ...common,
    }, ctx);
    if (res.status !== 201 && res.status !== 204) {
      throw await responseError(res, ctx, t.host.host, "blob upload");
    }
    await res.body?.cancel();
    const got = res.headers.get("docker-content-digest");
    if (got && got !== desc.digest) {
      throw new BerthError(
        "failed_precondition",
        `Cannot push ${desc.digest} to "${ctx.ref}": registry stored it as ${got} at ${t.host.host}`,
      );
    }
  }
}

function uploadLocation(res: Response, t: HostTransport, ctx: RequestContext): URL {
  const location = res.headers.get("location");
  if (!location) {
    throw failedPrecondition(
      `Cannot ${ctx.verb} "${ctx.ref}": upload response has no Location at ${t.host.host}`,
    );
  }
  // Relative locations are relative to the registry root, not to the API path.
  return new URL(location, `${t.host.scheme}://${t.host.host}/`);
}

/** Splits the content into pieces of exactly `size` bytes (the last may be shorter). */
async function* chunks(
  content: Uint8Array | ReadableStream<Uint8Array>,
  size: number,
): AsyncGenerator<Uint8Array> {
  if (content instanceof Uint8Array) {
    for (let at = 0; at < content.byteLength; at += size) yield content.subarray(at, at + size);
    return;
  }
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  for await (const piece of content) {
    let rest = piece;
    while (pendingBytes + rest.byteLength >= size) {
      const take = size - pendingBytes;
      pending.push(rest.subarray(0, take));
      yield concatBytes(pending, size);
      rest = rest.subarray(take);
      pending = [];
      pendingBytes = 0;
    }
    if (rest.byteLength > 0) {
      pending.push(rest);
      pendingBytes += rest.byteLength;
    }
  }
  if (pendingBytes > 0) yield concatBytes(pending, pendingBytes);
}
