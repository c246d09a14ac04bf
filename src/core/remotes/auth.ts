/**
 * Registry authentication: WWW-Authenticate challenges (RFC 7235), Basic credentials, and the
 * distribution token flow (GET <realm>?service=&scope=, with Basic credentials when there are any).
 */

import { BerthError, unavailable } from "../../base/errors.ts";

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export interface Challenge {
  /** Lowercased: "basic", "bearer". */
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/** Parses every challenge in a WWW-Authenticate header value; unknown syntax yields what parsed so far. */
export function parseWWWAuthenticate(header: string): Challenge[] {
  const out: { scheme: string; params: Record<string, string> }[] = [];
  let i = 0;
  const n = header.length;
  const skipSpace = () => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && /[!#$%&'*+\-.^_`|~0-9A-Za-z/]/.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  while (i < n) {
    skipSpace();
    while (i < n && header[i] === ",") {
      i++;
      skipSpace();
    }
    const scheme = token();
    if (!scheme) break;
    const challenge = { scheme: scheme.toLowerCase(), params: {} as Record<string, string> };
    out.push(challenge);
    // Parameters follow until a token that is not followed by "=" starts the next challenge.
    while (i < n) {
      skipSpace();
      while (i < n && header[i] === ",") {
        i++;
        skipSpace();
      }
      const save = i;
      const key = token();
      skipSpace();
      if (!key || header[i] !== "=") {
        i = save;
        break;
      }
      i++;
      // token68 (`Negotiate abc==`): padding, not a parameter; nothing Berth can use.
      if (i >= n || header[i] === "=" || header[i] === ",") {
        while (i < n && header[i] !== ",") i++;
        continue;
      }
      skipSpace();
      let value = "";
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++;
      } else {
        // Leniently up to the next comma or space: some servers leave URLs unquoted.
        const start = i;
        while (i < n && header[i] !== "," && header[i] !== " " && header[i] !== "\t") i++;
        value = header.slice(start, i);
      }
      challenge.params[key.toLowerCase()] = value;
    }
  }
  return out;
}

/** `user:pass` → credentials; the password may contain colons. */
export function parseCredentials(text: string): Credentials {
  const i = text.indexOf(":");
  if (i < 0) return { username: text, password: "" };
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

export const basicAuthorization = (c: Credentials) =>
  "Basic " + btoa(String.fromCodePoint(...new TextEncoder().encode(`${c.username}:${c.password}`)));

export interface TokenRequest {
  readonly realm: string;
  readonly service?: string;
  readonly scopes: readonly string[];
  readonly credentials?: Credentials;
  readonly signal?: AbortSignal;
  /** The fetch to use (a custom HTTP client for TLS settings). */
  readonly fetch?: typeof fetch;
}

export interface Token {
  readonly token: string;
  /** Epoch milliseconds. */
  readonly expiresAt: number;
}

/** Fetches a bearer token from a token server (distribution's token authentication spec). */
export async function fetchToken(req: TokenRequest): Promise<Token> {
  let url: URL;
  try {
    url = new URL(req.realm);
  } catch {
    throw unavailable(`Token realm "${req.realm}" is not a valid URL`);
  }
  if (req.service) url.searchParams.set("service", req.service);
  for (const scope of req.scopes) url.searchParams.append("scope", scope);
  const headers = new Headers();
  if (req.credentials) headers.set("authorization", basicAuthorization(req.credentials));
  const doFetch = req.fetch ?? fetch;
  let res: Response;
  try {
    res = await doFetch(url, { headers, signal: req.signal });
  } catch (err) {
    if (req.signal?.aborted) throw err;
    throw unavailable(`Cannot get a token from ${url.host}: ${(err as Error).message}`, { cause: err });
  }
  if (res.status === 401 || res.status === 403) {
    await res.body?.cancel();
    throw new BerthError(
      "permission_denied",
      `Token server ${url.host} refused ${
        req.credentials ? "the credentials" : "anonymous access"
      } (${res.status})`,
    );
  }
  if (!res.ok) {
    const text = (await res.text().catch(() => "")).trim().slice(0, 200);
    throw unavailable(`Token server ${url.host} answered ${res.status}${text ? `: ${text}` : ""}`);
  }
  let body: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
  try {
    body = await res.json();
  } catch (err) {
    throw unavailable(`Token server ${url.host} sent a body that is not JSON`, { cause: err });
  }
  const token = body.token || body.access_token;
  if (!token) throw unavailable(`Token server ${url.host} sent no token`);
  // The token spec's default lifetime is 60 s; refresh a little early.
  const lifetime = (typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : 60) * 1000;
  return { token, expiresAt: Date.now() + Math.max(lifetime - 5000, 1000) };
}

/**
 * Remembers, per registry host, how the host wants to be authenticated, and caches bearer tokens per
 * host and scope set, so only the first request of a kind sees a 401.
 */
export class Authorizer {
  readonly #challenges = new Map<string, Challenge>();
  readonly #tokens = new Map<string, Token>();
  readonly #credentials: (host: string) => Credentials | undefined;

  constructor(credentials: (host: string) => Credentials | undefined) {
    this.#credentials = credentials;
  }

  credentialsFor(host: string): Credentials | undefined {
    return this.#credentials(host);
  }

  /** Records the challenge of a 401; returns false when there is none this client can answer. */
  addChallenge(host: string, header: string | null): boolean {
    const challenges = parseWWWAuthenticate(header ?? "");
    const usable = challenges.find((c) => c.scheme === "bearer" && c.params.realm) ??
      challenges.find((c) => c.scheme === "basic");
    if (!usable) return false;
    this.#challenges.set(host, usable);
    return true;
  }

  /** Drops cached tokens for a host and scopes, so the next authorize() fetches a fresh one. */
  invalidate(host: string, scopes: readonly string[]): void {
    this.#tokens.delete(tokenKey(host, scopes));
  }

  /** The Authorization header value for a request, or undefined while the host has not challenged. */
  async authorize(
    host: string,
    scopes: readonly string[],
    options: { signal?: AbortSignal; fetch?: typeof fetch } = {},
  ): Promise<string | undefined> {
    const challenge = this.#challenges.get(host);
    if (!challenge) return undefined;
    const credentials = this.#credentials(host);
    if (challenge.scheme === "basic") return credentials ? basicAuthorization(credentials) : undefined;
    const all = mergeScopes(scopes, challenge.params.scope);
    const key = tokenKey(host, all);
    const cached = this.#tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    const token = await fetchToken({
      realm: challenge.params.realm!,
      service: challenge.params.service,
      scopes: all,
      credentials,
      signal: options.signal,
      fetch: options.fetch,
    });
    this.#tokens.set(key, token);
    return `Bearer ${token.token}`;
  }
}

const tokenKey = (host: string, scopes: readonly string[]) => `${host}\n${[...scopes].sort().join(" ")}`;

/** Our scopes plus the ones the challenge asks for, without duplicates. */
function mergeScopes(scopes: readonly string[], challengeScope: string | undefined): string[] {
  const all = new Set(scopes);
  for (const s of (challengeScope ?? "").split(" ")) if (s) all.add(s);
  return [...all].sort();
}

/** The token scope for a repository: `repository:library/busybox:pull`. */
export const repositoryScope = (path: string, push: boolean) =>
  `repository:${path}:${push ? "pull,push" : "pull"}`;
