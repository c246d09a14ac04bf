/**
 * The distribution client's entry point, after containerd's docker resolver: resolve a reference to a
 * descriptor, then fetch or push by descriptor. Independent of any content store.
 */

import { BerthError, notFound, notImplemented } from "../../base/errors.ts";
import { parseReference } from "../../oci/reference.ts";
import { Authorizer, type Credentials, parseCredentials, repositoryScope } from "./auth.ts";
import { configHostsFor, defaultDockerConfigPath, readDockerConfig } from "./credentials.ts";
import { Fetcher } from "./fetcher.ts";
import { configureHosts, type HostsOptions } from "./hosts.ts";
import { Pusher } from "./pusher.ts";
import { HostTransport, type RepositoryAccess, responseError, withNamespace } from "./transport.ts";
import {
  type Descriptor,
  isManifestMediaType,
  MAX_MANIFEST_SIZE,
  MediaType,
  SCHEMA1_MEDIA_TYPES,
} from "../../oci/image.ts";
import { ErrorRanking, readLimited } from "./util.ts";
import { sha256Hex } from "../../base/hash.ts";

export interface ResolverOptions extends HostsOptions {
  /** `user:pass`, credentials, or a lookup by registry host; applies before the docker config. */
  readonly credentials?: string | Credentials | ((host: string) => Credentials | undefined);
  /** Docker client config with `auths`; default `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
  readonly dockerConfig?: string | false;
  /** PEM text of extra CA certificates trusted for every host (on top of the system store). */
  readonly caCerts?: readonly string[];
  /** Headers sent with every request. */
  readonly headers?: Record<string, string>;
  /** Deadline for each request's response headers; default 30 s. */
  readonly timeoutMs?: number;
  readonly userAgent?: string;
}

export interface Resolved {
  /** The normalised reference: `docker.io/library/busybox:latest`. */
  readonly name: string;
  readonly descriptor: Descriptor;
}

export interface RequestOptions {
  readonly signal?: AbortSignal;
}

const MANIFEST_ACCEPT = [
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
  MediaType.OciManifest,
  MediaType.OciIndex,
  "*/*",
].join(", ");

export class Resolver implements Disposable {
  readonly #options: ResolverOptions;
  readonly #authorizer: Authorizer;
  readonly #transports = new Map<string, Promise<HostTransport[]>>();
  #dockerCredentials: Map<string, Credentials> | undefined;

  constructor(options: ResolverOptions = {}) {
    this.#options = options;
    this.#authorizer = new Authorizer((host) => this.#credentialsFor(host));
  }

  /** Closes the HTTP clients made for custom CAs. */
  close(): void {
    for (const pending of this.#transports.values()) {
      pending.then((ts) => ts.forEach((t) => t.close()), () => {});
    }
    this.#transports.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Resolves a tag or digest reference to the descriptor of its manifest or index. */
  async resolve(input: string, options: RequestOptions = {}): Promise<Resolved> {
    const access = this.#access(input);
    const ref = access.ref;
    const ctx = { verb: "resolve", ref: input };
    const byDigest = ref.digest !== undefined;
    const paths = byDigest
      ? [`/${ref.path}/manifests/${ref.digest}`, `/${ref.path}/blobs/${ref.digest}`]
      : [`/${ref.path}/manifests/${ref.tag}`];
    const hosts = await access.hosts(byDigest ? "pull" : "resolve");
    if (hosts.length === 0) throw notFound(`Cannot resolve "${input}": no host has the resolve capability`);
    const errors = new ErrorRanking();
    for (const [pathIndex, path] of paths.entries()) {
      // The blobs endpoint is a legacy fallback, only worth asking when manifests said "not found".
      if (pathIndex > 0 && errors.rank > 2) break;
      for (const t of hosts) {
        const scopes = [repositoryScope(ref.path, false)];
        const url = withNamespace(path, t, ref);
        let res: Response;
        try {
          res = await t.request({
            method: "HEAD",
            url,
            scopes,
            headers: { accept: MANIFEST_ACCEPT },
            ...options,
          }, ctx);
        } catch (err) {
          if (options.signal?.aborted || !(err instanceof BerthError)) throw err;
          errors.add(err, 1);
          continue;
        }
        if (!res.ok) {
          await res.body?.cancel();
          const err = await responseError(
            res,
            ctx,
            t.host.host,
            path.includes("/blobs/") ? "blob" : "manifest",
          );
          if (res.status === 404) errors.add(err, 2);
          else if (res.status >= 400) errors.add(err, 3);
          else throw err;
          continue;
        }
        const mediaType = contentType(res);
        refuseSchema1(mediaType, ctx, t.host.host);
        const length = res.headers.get("content-length");
        let size = length === null ? -1 : Number(length);
        let digest = ref.digest ?? res.headers.get("docker-content-digest") ?? undefined;
        let finalType = mediaType;
        if (digest === undefined || size < 0 || !isManifestMediaType(mediaType)) {
          // No usable headers: the manifest itself says what it is and hashes to its digest.
          const got = await this.#getManifest(t, url, scopes, ctx, options.signal);
          size = got.bytes.byteLength;
          finalType = isManifestMediaType(got.mediaType)
            ? got.mediaType
            : sniffMediaType(got.bytes) ?? got.mediaType;
          refuseSchema1(finalType, ctx, t.host.host);
          const computed = `sha256:${await sha256Hex(got.bytes)}`;
          if (ref.digest !== undefined && ref.digest.startsWith("sha256:") && computed !== ref.digest) {
            errors.add(
              new BerthError(
                "failed_precondition",
                `Cannot resolve "${input}": content digest ${computed} does not match at ${t.host.host}`,
              ),
              4,
            );
            continue;
          }
          digest = ref.digest ?? computed;
        }
        if (size > MAX_MANIFEST_SIZE) {
          errors.add(
            notFound(`Cannot resolve "${input}": rejecting ${size} byte manifest at ${t.host.host}`),
            4,
          );
          continue;
        }
        return { name: ref.toString(), descriptor: { mediaType: finalType, digest, size } };
      }
    }
    throw errors.best() ?? notFound(`Cannot resolve "${input}": not found`);
  }

  /** A fetcher for blobs and manifests of the reference's repository. */
  fetcher(ref: string): Fetcher {
    return new Fetcher(this.#access(ref));
  }

  /** A pusher into the reference's repository. */
  pusher(ref: string): Pusher {
    return new Pusher(this.#access(ref));
  }

  async #getManifest(
    t: HostTransport,
    url: string,
    scopes: string[],
    ctx: { verb: string; ref: string },
    signal: AbortSignal | undefined,
  ): Promise<{ bytes: Uint8Array; mediaType: string }> {
    const res = await t.request(
      { method: "GET", url, scopes, headers: { accept: MANIFEST_ACCEPT }, signal },
      ctx,
    );
    if (!res.ok) throw await responseError(res, ctx, t.host.host, "manifest");
    const mediaType = contentType(res);
    refuseSchema1(mediaType, ctx, t.host.host);
    const bytes = await readLimited(
      res,
      MAX_MANIFEST_SIZE,
      () =>
        notFound(
          `Cannot resolve "${ctx.ref}": manifest larger than ${MAX_MANIFEST_SIZE} bytes at ${t.host.host}`,
        ),
    );
    return { bytes, mediaType };
  }

  #access(input: string): RepositoryAccess {
    const ref = parseReference(input);
    return {
      ref,
      input,
      hosts: async (capability) =>
        (await this.#hostTransports(ref.domain)).filter((t) => t.host.capabilities.has(capability)),
    };
  }

  #hostTransports(domain: string): Promise<HostTransport[]> {
    let pending = this.#transports.get(domain);
    if (!pending) {
      pending = configureHosts(domain, this.#options).then((hosts) =>
        hosts.map((h) =>
          new HostTransport(h, {
            authorizer: this.#authorizer,
            caCerts: this.#options.caCerts,
            headers: this.#options.headers,
            timeoutMs: this.#options.timeoutMs,
            userAgent: this.#options.userAgent ?? "berth",
          })
        )
      );
      // A failed configuration (bad hosts.toml) is not cached: fixing the file must take effect.
      pending.catch(() => this.#transports.delete(domain));
      this.#transports.set(domain, pending);
    }
    return pending;
  }

  #credentialsFor(host: string): Credentials | undefined {
    const c = this.#options.credentials;
    if (typeof c === "string") return parseCredentials(c);
    if (typeof c === "function") {
      const found = c(host);
      if (found) return found;
    } else if (c) return c;
    if (this.#options.dockerConfig === false) return undefined;
    if (!this.#dockerCredentials) {
      const path = this.#options.dockerConfig ?? defaultDockerConfigPath();
      this.#dockerCredentials = path ? readDockerConfig(path) : new Map();
    }
    for (const key of configHostsFor(host)) {
      const found = this.#dockerCredentials.get(key);
      if (found) return found;
    }
    return undefined;
  }
}

function contentType(res: Response): string {
  return (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
}

function refuseSchema1(mediaType: string, ctx: { ref: string }, host: string): void {
  if (SCHEMA1_MEDIA_TYPES.has(mediaType)) {
    throw notImplemented(
      `Cannot resolve "${ctx.ref}": schema 1 manifests are not supported (${mediaType}); ` +
        `rebuild the image as OCI or Docker schema 2 at ${host}`,
    );
  }
}

/** The media type of a manifest body without a usable Content-Type. */
function sniffMediaType(bytes: Uint8Array): string | undefined {
  try {
    const m = JSON.parse(new TextDecoder().decode(bytes)) as {
      schemaVersion?: number;
      mediaType?: string;
      manifests?: unknown;
      config?: unknown;
    };
    if (m.schemaVersion === 1) return MediaType.DockerSchema1Manifest;
    if (typeof m.mediaType === "string") return m.mediaType;
    if (m.manifests !== undefined) return MediaType.OciIndex;
    if (m.config !== undefined) return MediaType.OciManifest;
  } catch { /* not JSON */ }
  return undefined;
}
