/**
 * HTTP to one registry host: per-host TLS client, configured headers, authorization with one retry after
 * a 401 challenge, manual redirects (credentials never follow to another origin), and a deadline for
 * the response headers. The body stream is then governed by the caller's signal only, so a large blob
 * is not cut off by a request timeout.
 */

import { BerthError, type ErrorKind, unavailable } from "../../base/errors.ts";
import type { Authorizer } from "./auth.ts";
import type { Capability, RegistryHost } from "./hosts.ts";
import type { Reference } from "../../oci/reference.ts";

export const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 10;

export interface HostRequest {
  readonly method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Absolute URL, or a path below the host's API root (`/library/busybox/manifests/latest`). */
  readonly url: string | URL;
  readonly headers?: Record<string, string>;
  /** A stream body cannot be replayed, so a 401 on it is not retried. */
  readonly body?: Uint8Array | ReadableStream<Uint8Array>;
  /** Token scopes the request needs. */
  readonly scopes: readonly string[];
  readonly signal?: AbortSignal;
  /** Deadline for the response headers; default 30 s. */
  readonly timeoutMs?: number;
}

export interface TransportOptions {
  readonly authorizer: Authorizer;
  /** PEM text of extra CA certificates for every host. */
  readonly caCerts?: readonly string[];
  readonly headers?: Record<string, string>;
  readonly timeoutMs?: number;
  readonly userAgent?: string;
}

/** What went wrong, for error messages: "Cannot <verb> "<ref>": <what> (<status>) at <host>". */
/** What fetchers and pushers need: the reference and the transports of its hosts, in order. */
export interface RepositoryAccess {
  readonly ref: Reference;
  /** The reference as the caller wrote it, for error messages. */
  readonly input: string;
  hosts(capability: Capability): Promise<HostTransport[]>;
}

export interface RequestContext {
  readonly verb: string;
  readonly ref: string;
}

export class HostTransport {
  readonly host: RegistryHost;
  readonly #options: TransportOptions;
  #client: Deno.HttpClient | undefined;
  #clientReady = false;

  constructor(host: RegistryHost, options: TransportOptions) {
    this.host = host;
    this.#options = options;
  }

  /** The API root: `http://127.0.0.1:5000/v2`. */
  get base(): string {
    return `${this.host.scheme}://${this.host.host}${this.host.path}`;
  }

  close(): void {
    this.#client?.close();
    this.#client = undefined;
    this.#clientReady = false;
  }

  /** A fetch bound to this host's TLS settings, for token servers reached through it. */
  readonly fetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const client = this.#httpClient();
    return fetch(input, client ? { ...init, client } : init);
  };

  #httpClient(): Deno.HttpClient | undefined {
    if (!this.#clientReady) {
      const pems = [...(this.#options.caCerts ?? [])];
      for (const file of this.host.caFiles) {
        try {
          pems.push(Deno.readTextFileSync(file));
        } catch (err) {
          throw unavailable(
            `Cannot read CA certificate ${file} for ${this.host.host}: ${(err as Error).message}`,
          );
        }
      }
      // Deno's fetch has no switch to skip verification, so skip_verify is refused rather than ignored.
      if (this.host.skipVerify && this.host.scheme === "https") {
        throw new BerthError(
          "not_implemented",
          `Cannot skip TLS verification for ${this.host.host}: not supported; configure its CA ("ca" in hosts.toml) instead`,
        );
      }
      this.#client = pems.length > 0 ? Deno.createHttpClient({ caCerts: pems }) : undefined;
      this.#clientReady = true;
    }
    return this.#client;
  }

  /**
   * Sends a request. Non-2xx responses are returned, not thrown (callers decide what a 404 means);
   * network failures and timeouts throw unavailable/deadline errors naming the host.
   */
  async request(req: HostRequest, ctx: RequestContext): Promise<Response> {
    const auth = this.#options.authorizer;
    const replayable = !(req.body instanceof ReadableStream);
    let authorization = await this.#authorize(req, ctx);
    for (let attempt = 0;; attempt++) {
      const res = await this.#send(req, authorization, ctx);
      if (res.status !== 401 || attempt > 0 || !replayable) return res;
      const challenged = auth.addChallenge(this.host.host, res.headers.get("www-authenticate"));
      if (!challenged) return res;
      auth.invalidate(this.host.host, req.scopes);
      const next = await this.#authorize(req, ctx);
      // Nothing new to offer (e.g. Basic without credentials): the 401 is the answer.
      if (next === undefined || next === authorization) return res;
      await res.body?.cancel();
      authorization = next;
    }
  }

  async #authorize(req: HostRequest, ctx: RequestContext): Promise<string | undefined> {
    try {
      return await this.#options.authorizer.authorize(this.host.host, req.scopes, {
        signal: req.signal,
        fetch: this.fetch,
      });
    } catch (err) {
      if (err instanceof BerthError) {
        throw new BerthError(err.kind, `Cannot ${ctx.verb} "${ctx.ref}": ${lowerFirst(err.message)}`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  async #send(req: HostRequest, authorization: string | undefined, ctx: RequestContext): Promise<Response> {
    const timeoutMs = req.timeoutMs ?? this.#options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const deadline = new AbortController();
    const signal = req.signal ? AbortSignal.any([req.signal, deadline.signal]) : deadline.signal;
    const timer = setTimeout(
      () => deadline.abort(new DOMException(`no response within ${timeoutMs} ms`, "TimeoutError")),
      timeoutMs,
    );
    let url = typeof req.url === "string" && req.url.startsWith("/")
      ? new URL(this.base + req.url)
      : new URL(req.url);
    const origin = url.origin;
    let method: string = req.method;
    let body = req.body;
    try {
      for (let hops = 0;; hops++) {
        const headers = new Headers();
        for (const [k, values] of Object.entries(this.host.header)) {
          for (const v of values) headers.append(k, v);
        }
        for (const [k, v] of Object.entries(this.#options.headers ?? {})) headers.set(k, v);
        if (this.#options.userAgent) headers.set("user-agent", this.#options.userAgent);
        for (const [k, v] of Object.entries(req.headers ?? {})) headers.set(k, v);
        if (authorization && url.origin === origin) headers.set("authorization", authorization);
        const client = this.#httpClient();
        const res = await fetch(url, {
          method,
          headers,
          body: body as BodyInit | undefined,
          redirect: "manual",
          signal,
          ...(client ? { client } : {}),
        });
        const location = res.headers.get("location");
        if (![301, 302, 303, 307, 308].includes(res.status) || !location) return res;
        await res.body?.cancel();
        if (hops >= MAX_REDIRECTS) {
          throw unavailable(`Cannot ${ctx.verb} "${ctx.ref}": too many redirects at ${this.host.host}`);
        }
        url = new URL(location, url);
        if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === "POST")) {
          method = "GET";
          body = undefined;
        }
      }
    } catch (err) {
      throw this.#networkError(err, req, ctx, timeoutMs);
    } finally {
      clearTimeout(timer);
    }
  }

  #networkError(err: unknown, req: HostRequest, ctx: RequestContext, timeoutMs: number): unknown {
    if (err instanceof BerthError) return err;
    if (req.signal?.aborted) return req.signal.reason ?? err;
    const prefix = `Cannot ${ctx.verb} "${ctx.ref}"`;
    if (err instanceof DOMException && err.name === "TimeoutError") {
      return new BerthError(
        "deadline_exceeded",
        `${prefix}: no response within ${timeoutMs} ms at ${this.host.host}`,
        {
          cause: err,
        },
      );
    }
    // Deno's fetch says "fetch failed"; the reason is in the cause chain.
    const parts: string[] = [];
    for (let e: unknown = err; e !== undefined && parts.length < 5; e = (e as Error).cause) {
      parts.push(String((e as Error)?.message ?? e));
    }
    const text = parts.join(": ");
    let what = text;
    if (/connection refused/i.test(text)) what = "connection refused";
    else if (/certificate|tls|handshake/i.test(text)) {
      what = `TLS failure (${/\(Connect\): (.*)$/.exec(text)?.[1] ?? parts.at(-1)})`;
    } else if (/dns|lookup|resolve/i.test(text)) what = "host name lookup failed";
    return unavailable(`${prefix}: ${what} at ${this.host.host}`, { cause: err });
  }
}

/** The error for a failed registry response, with the registry's own error message when it sent one. */
export async function responseError(res: Response, ctx: RequestContext, host: string, object?: string) {
  let what = "";
  if (res.body) {
    try {
      const body = JSON.parse(await res.text()) as { errors?: { code?: string; message?: string }[] };
      what = (body.errors ?? []).map((e) => e.message || e.code?.toLowerCase().replaceAll("_", " ")).filter(
        Boolean,
      ).join("; ");
    } catch { /* not a distribution error body */ }
  }
  if (!what) what = statusText(res.status, object);
  return new BerthError(
    kindOfStatus(res.status),
    `Cannot ${ctx.verb} "${ctx.ref}": ${what} (${res.status}) at ${host}`,
  );
}

function statusText(status: number, object: string | undefined): string {
  switch (status) {
    case 401:
      return "unauthorized";
    case 403:
      return "denied";
    case 404:
      return object ? `${object} unknown` : "not found";
    case 405:
      return "method not allowed";
    case 416:
      return "range not satisfiable";
    case 429:
      return "too many requests";
    default:
      return status >= 500 ? "server error" : "unexpected response";
  }
}

export function kindOfStatus(status: number): ErrorKind {
  if (status === 400 || status === 416) return "invalid_argument";
  if (status === 401 || status === 403) return "permission_denied";
  if (status === 404) return "not_found";
  if (status === 405) return "not_implemented";
  if (status === 409 || status === 412) return "failed_precondition";
  if (status === 429 || status >= 500) return "unavailable";
  return "internal";
}

const lowerFirst = (s: string) => s.charAt(0).toLowerCase() + s.slice(1);

/** Mirrors learn which upstream a request is for from `?ns=`, as containerd sends it. */
export function withNamespace(path: string, t: { readonly host: RegistryHost }, ref: Reference): string {
  if (t.host.host === ref.domain || (ref.domain === "docker.io" && t.host.host === "registry-1.docker.io")) {
    return path;
  }
  return `${path}?ns=${encodeURIComponent(ref.domain)}`;
}
