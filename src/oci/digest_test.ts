import assert from "node:assert/strict";
import { parseDigest, validateDigest } from "./digest.ts";

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
