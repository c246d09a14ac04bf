/** Fetches blobs and manifests by descriptor, from the first pull host that has them. */

import { BerthError, invalidArgument, notFound, unavailable } from "../../base/errors.ts";
import { validateDigest } from "../../oci/digest.ts";
import { repositoryScope } from "./auth.ts";
import { type RepositoryAccess, responseError, withNamespace } from "./transport.ts";
import { type Descriptor, isManifestMediaType } from "../../oci/image.ts";
import { ErrorRanking } from "./util.ts";

export interface FetchOptions {
  /** Start at this byte (resume): asks for `Range: bytes=<offset>-`. */
  readonly offset?: number;
  readonly signal?: AbortSignal;
  /** Deadline for the response headers; the body is bounded by `signal` only. */
  readonly timeoutMs?: number;
}

export class Fetcher {
  readonly #access: RepositoryAccess;

  constructor(access: RepositoryAccess) {
    this.#access = access;
  }

  /**
   * The content of `desc` from `offset` on. The stream is not verified here: whoever stores it checks
   * size and digest (a content store's writer does).
   */
  async fetch(desc: Descriptor, options: FetchOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const { ref, input } = this.#access;
    validateDigest(desc.digest);
    const ctx = { verb: `fetch ${desc.digest} of`, ref: input };
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw invalidArgument(`Cannot fetch ${desc.digest} of "${input}": offset ${offset} is not valid`);
    }
    if (desc.size >= 0 && offset > desc.size) {
      throw invalidArgument(
        `Cannot fetch ${desc.digest} of "${input}": offset ${offset} is past its size ${desc.size}`,
      );
    }
    const hosts = await this.#access.hosts("pull");
    if (hosts.length === 0) {
      throw notFound(`Cannot fetch ${desc.digest} of "${input}": no host has the pull capability`);
    }
    // Manifests live under /manifests/; some registries only serve them there, others also under /blobs/.
    const paths = isManifestMediaType(desc.mediaType)
      ? [`/${ref.path}/manifests/${desc.digest}`, `/${ref.path}/blobs/${desc.digest}`]
      : [`/${ref.path}/blobs/${desc.digest}`];
    const errors = new ErrorRanking();
    for (const path of paths) {
      for (const t of hosts) {
        const headers: Record<string, string> = {
          accept: isManifestMediaType(desc.mediaType) ? `${desc.mediaType}, */*` : "*/*",
        };
        if (offset > 0) headers.range = `bytes=${offset}-`;
        let res: Response;
        try {
          res = await t.request({
            method: "GET",
            url: withNamespace(path, t, ref),
            headers,
            scopes: [repositoryScope(ref.path, false)],
            signal: options.signal,
            timeoutMs: options.timeoutMs,
          }, ctx);
        } catch (err) {
          if (options.signal?.aborted || !(err instanceof BerthError)) throw err;
          errors.add(err, 1);
          continue;
        }
        if (!res.ok) {
          const err = await responseError(
            res,
            ctx,
            t.host.host,
            path.includes("/manifests/") ? "manifest" : "blob",
          );
          errors.add(err, res.status === 404 ? 2 : 3);
          continue;
        }
        const body = res.body ?? new ReadableStream<Uint8Array>({ start: (c) => c.close() });
        if (offset === 0) return body;
        if (res.status === 206) {
          const start = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "")?.[1];
          if (start !== undefined && Number(start) !== offset) {
            await body.cancel();
            throw unavailable(
              `Cannot fetch ${desc.digest} of "${input}": asked for bytes from ${offset}, got from ${start} at ${t.host.host}`,
            );
          }
          return body;
        }
        // The server ignored Range and sent everything: drop what the caller already has.
        return body.pipeThrough(skipBytes(offset));
      }
    }
    throw errors.best() ?? notFound(`Cannot fetch ${desc.digest} of "${input}": not found`);
  }
}

function skipBytes(count: number): TransformStream<Uint8Array, Uint8Array> {
  let left = count;
  return new TransformStream({
    transform(chunk, controller) {
      if (left >= chunk.byteLength) {
        left -= chunk.byteLength;
        return;
      }
      controller.enqueue(left > 0 ? chunk.subarray(left) : chunk);
      left = 0;
    },
  });
}
