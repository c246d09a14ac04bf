/**
 * Single-use tokens for streaming requests, after the kubelet's requestCache: the CRI call stores the
 * request and hands out a URL with a random token; the client's HTTP request consumes it. Tokens expire
 * (a minute) and their number is bounded, so that unclaimed URLs cannot pile up.
 */

import { unavailable } from "../../../base/errors.ts";

export interface RequestCacheOptions {
  /** How long a token stays valid (the kubelet's cacheTTL: one minute). */
  readonly ttlMs?: number;
  /** Tokens outstanding at once (the kubelet's maxInFlight: 1000). */
  readonly maxInFlight?: number;
  /** The clock, in milliseconds; tests pass their own. */
  readonly now?: () => number;
}

/** 16 random bytes: 128 bits, where the kubelet's 8-character tokens carry 48. */
const tokenBytes = 16;

interface Entry<T> {
  readonly request: T;
  readonly expires: number;
}

export class RequestCache<T> {
  readonly #ttl: number;
  readonly #max: number;
  readonly #now: () => number;
  /** In insertion order, which is expiry order: the oldest are first. */
  readonly #entries = new Map<string, Entry<T>>();

  constructor(options: RequestCacheOptions = {}) {
    this.#ttl = options.ttlMs ?? 60_000;
    this.#max = options.maxInFlight ?? 1000;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Stores `request`; returns its token (URL-safe). Fails when `maxInFlight` tokens are outstanding. */
  insert(request: T): string {
    this.#dropExpired();
    if (this.#entries.size >= this.#max) {
      throw unavailable(
        `Cannot hand out a streaming URL: ${this.#max} are outstanding; retry after ${
          Math.ceil(this.#ttl / 1000)
        } s`,
      );
    }
    let token: string;
    do token = randomToken(); while (this.#entries.has(token));
    this.#entries.set(token, { request, expires: this.#now() + this.#ttl });
    return token;
  }

  /** The request of `token`, removed; undefined when unknown, used or expired. */
  consume(token: string): T | undefined {
    const entry = this.#entries.get(token);
    if (!entry) return undefined;
    this.#entries.delete(token);
    return this.#now() > entry.expires ? undefined : entry.request;
  }

  #dropExpired(): void {
    const now = this.#now();
    for (const [token, entry] of this.#entries) {
      if (now <= entry.expires) return;
      this.#entries.delete(token);
    }
  }
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(tokenBytes));
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
