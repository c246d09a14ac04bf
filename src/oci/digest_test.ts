import assert from "node:assert/strict";
import { parseDigest, validateDigest } from "./digest.ts";
import { digestOf } from "./digest_of.ts";

const D = "sha256:" + "ab".repeat(32);

Deno.test("validateDigest() accepts sha256, sha384 and sha512 digests and returns them", () => {
  assert.equal(validateDigest(D), D);
  assert.equal(validateDigest("sha512:" + "a".repeat(128)), "sha512:" + "a".repeat(128));
  assert.equal(validateDigest("sha384:" + "a".repeat(96)), "sha384:" + "a".repeat(96));
  assert.deepEqual(parseDigest(D), { algorithm: "sha256", encoded: "ab".repeat(32) });
});

Deno.test("validateDigest() names what is wrong with a malformed digest", () => {
  assert.throws(() => validateDigest("md5:" + "a".repeat(32)), /unsupported or missing algorithm/);
  assert.throws(() => validateDigest("sha256"), /unsupported or missing algorithm/);
  assert.throws(() => validateDigest("sha256:" + "AB".repeat(32)), /64 lower-case hex digits/);
  assert.throws(() => validateDigest("sha256:abc"), /64 lower-case hex digits/);
});

Deno.test("digestOf() hashes bytes and text alike, in the algorithm asked for", () => {
  const empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  assert.equal(digestOf(new Uint8Array()), empty);
  assert.equal(digestOf(""), empty);
  assert.equal(digestOf("abc"), digestOf(new TextEncoder().encode("abc")));
  assert.match(digestOf("abc", "sha512"), /^sha512:[a-f0-9]{128}$/);
});
