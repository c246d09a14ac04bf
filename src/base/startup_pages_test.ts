import assert from "node:assert/strict";
import { parseSmaps, releaseStartupPages } from "./startup_pages.ts";
import { isLibcryptoPath, LibcryptoDigest } from "../../ffi/libcrypto.ts";

const SMAPS = `55b2c3e22000-55b2c59b0000 r--p 00000000 fe:00 2203759                    /usr/bin/deno
Size:              28216 kB
Anonymous:             0 kB
55b2c59b0000-55b2c9b9c000 r-xp 01b8e000 fe:00 2203759                    /usr/bin/deno
Size:              67504 kB
Anonymous:             0 kB
55b2c9b9c000-55b2c9b9d000 r--p 05b02000 fe:00 2203759                    /usr/bin/deno
Size:                  4 kB
Anonymous:             4 kB
7ffd1000-7ffd2000 rw-p 00000000 00:00 0
Anonymous:             4 kB
`;

Deno.test("parseSmaps reads each mapping's range, permissions, file and private pages", () => {
  const maps = parseSmaps(SMAPS);
  assert.deepEqual(maps.map((m) => [m.perms, m.path, m.anonymousKiB]), [
    ["r--p", "/usr/bin/deno", 0],
    ["r-xp", "/usr/bin/deno", 0],
    ["r--p", "/usr/bin/deno", 4],
    ["rw-p", "", 4],
  ]);
  assert.equal(maps[0]?.start, 0x55b2c3e22000n);
  assert.equal(maps[0]?.end, 0x55b2c59b0000n);
});

/** Bytes of the unwritten read-only and code mappings of the executable and of libcrypto (when mapped). */
function releasable(): number {
  return parseSmaps(Deno.readTextFileSync("/proc/self/smaps"))
    .filter((m) =>
      (m.path === Deno.execPath() || isLibcryptoPath(m.path)) &&
      (m.perms === "r--p" || m.perms === "r-xp") &&
      m.anonymousKiB === 0
    )
    .reduce((n, m) => n + Number(m.end - m.start), 0);
}

Deno.test("releaseStartupPages drops only the executable's unwritten read-only data and code, and the process runs on", () => {
  // libcrypto's count too when another test module of this process has loaded it.
  const expected = releasable();
  assert.ok(expected > 0);
  assert.equal(releaseStartupPages(), expected);
  // Later releases (after each idle collection) reuse the ranges read the first time.
  assert.equal(releaseStartupPages(), expected);
  // Pages come back on demand: V8, ICU and Deno's built-ins still work.
  assert.equal(new Intl.NumberFormat("en-US").format(1234.5), "1,234.5");
  assert.equal(new TextDecoder().decode(new TextEncoder().encode("ok")), "ok");
  assert.match(new Error("x").stack ?? "", /startup_pages_test/);
});

Deno.test("releaseStartupPages also drops libcrypto's unwritten pages once a digest has loaded it, and digests go on", () => {
  const first = LibcryptoDigest.open("sha256");
  assert.ok(first, "libcrypto is on this host (libssl3: .ci/run installs openssl)");
  first.update(new TextEncoder().encode("abc"));
  first.close();
  const expected = releasable();
  assert.equal(releaseStartupPages(), expected);
  const d = LibcryptoDigest.open("sha256")!;
  d.update(new TextEncoder().encode("abc"));
  assert.equal(
    [...d.digest()].map((b) => b.toString(16).padStart(2, "0")).join(""),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  d.close();
});
