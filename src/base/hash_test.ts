import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { LibcryptoDigest } from "../../ffi/libcrypto.ts";
import { sha256HexSync, streamHash } from "./hash.ts";

const data = new Uint8Array(300_001).map((_, i) => (i * 7919) % 251);

for (const algorithm of ["sha256", "sha384", "sha512"]) {
  Deno.test(`streamHash("${algorithm}") matches node:crypto in odd chunks, read midway, and after reset()`, () => {
    const h = streamHash(algorithm);
    const reference = createHash(algorithm);
    for (let at = 0; at < data.length; at += 65_537) {
      const chunk = data.subarray(at, at + 65_537);
      h.update(chunk);
      reference.update(chunk);
      // Reading the running digest does not end the hash.
      assert.equal(h.hex(), reference.copy().digest("hex"));
    }
    h.update(new Uint8Array());
    assert.equal(h.hex(), reference.digest("hex"));
    h.reset();
    assert.equal(h.hex(), createHash(algorithm).digest("hex"));
  });
}

Deno.test("LibcryptoDigest refuses a name libcrypto does not know and use after close()", () => {
  assert.equal(LibcryptoDigest.open("no-such-digest"), undefined);
  const d = LibcryptoDigest.open("sha256");
  assert.ok(d, "libcrypto is on this host (libssl3: .ci/run installs openssl)");
  d.update(new TextEncoder().encode("abc"));
  assert.equal(
    [...d.digest()].map((b) => b.toString(16).padStart(2, "0")).join(""),
    sha256HexSync("abc"),
  );
  d.close();
  d.close();
  assert.throws(() => d.update(new Uint8Array(1)), /closed/);
});
