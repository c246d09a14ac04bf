import assert from "node:assert/strict";
import { errorKind } from "../../../base/errors.ts";
import { RequestCache } from "./request_cache.ts";

Deno.test("RequestCache tokens are single-use", () => {
  const cache = new RequestCache<string>();
  const token = cache.insert("exec c1");
  assert.equal(cache.consume(token), "exec c1");
  assert.equal(cache.consume(token), undefined);
  assert.equal(cache.consume("never-issued"), undefined);
});

Deno.test("RequestCache tokens are URL-safe, long and distinct", () => {
  const cache = new RequestCache<number>({ maxInFlight: 500 });
  const tokens = new Set<string>();
  for (let i = 0; i < 500; i++) tokens.add(cache.insert(i));
  assert.equal(tokens.size, 500);
  for (const t of tokens) assert.match(t, /^[A-Za-z0-9_-]{22}$/);
});

Deno.test("RequestCache tokens expire after the TTL", () => {
  let now = 1_000;
  const cache = new RequestCache<string>({ ttlMs: 60_000, now: () => now });
  const early = cache.insert("a");
  const late = cache.insert("b");
  now += 60_000;
  assert.equal(cache.consume(early), "a", "valid up to the TTL");
  now += 1;
  assert.equal(cache.consume(late), undefined);
});

Deno.test("RequestCache refuses tokens beyond maxInFlight until some expire", () => {
  let now = 0;
  const cache = new RequestCache<number>({ ttlMs: 1000, maxInFlight: 3, now: () => now });
  cache.insert(1);
  now = 500;
  cache.insert(2);
  cache.insert(3);
  assert.throws(
    () => cache.insert(4),
    (err) => errorKind(err) === "unavailable" && /3 are outstanding/.test(String(err)),
  );
  now = 1001;
  // The first token expired and makes room; the other two are still held.
  cache.insert(4);
  assert.equal(cache.size, 3);
});

Deno.test("RequestCache frees the slot of a consumed token", () => {
  const cache = new RequestCache<number>({ maxInFlight: 1 });
  cache.consume(cache.insert(1));
  cache.insert(2);
  assert.equal(cache.size, 1);
});
