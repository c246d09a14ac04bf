import assert from "node:assert/strict";
import { isShimOf, marginal, shimSocketOf } from "./shims.ts";

const SOCK = "/tmp/berth-bench-x/containerd.sock";

Deno.test("isShimOf() recognises containerd's and Berth's serving shims of one daemon socket only", () => {
  assert.equal(
    isShimOf(["/usr/bin/containerd-shim-runc-v2", "-namespace", "ns", "-id", "c1", "-address", SOCK], SOCK),
    true,
  );
  assert.equal(
    isShimOf([
      "/tmp/rt/deno",
      "run",
      "-q",
      "-A",
      "/w/dist/bundle/main.js",
      "shim",
      "-namespace",
      "ns",
      "-address",
      SOCK,
    ], SOCK),
    true,
  );
  assert.equal(
    isShimOf(["/usr/bin/containerd-shim-runc-v2", "-namespace", "ns", "-address", `${SOCK}2`], SOCK),
    false,
  );
  // The daemon itself names its socket with --address, and one-shot start/delete actions exit at once.
  assert.equal(isShimOf(["/tmp/rt/deno", "run", "-A", "berth.js", "daemon", "--address", SOCK], SOCK), false);
  assert.equal(isShimOf(["containerd-shim-runc-v2", "-address", SOCK, "-id", "c1", "delete"], SOCK), false);
});

Deno.test("shimSocketOf() reads Berth's -socket and derives containerd's from address, namespace and id", async () => {
  assert.equal(
    await shimSocketOf(["deno", "shim", "-address", SOCK, "-socket", "unix:///run/berth/s/abc"]),
    "/run/berth/s/abc",
  );
  // sha256("/tmp/berth-bench-x/containerd.sock/ns/c1"), as containerd 1.6's shim.SocketAddress.
  const expected = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${SOCK}/ns/c1`)),
  );
  const hex = [...expected].map((b) => b.toString(16).padStart(2, "0")).join("");
  assert.equal(
    await shimSocketOf(["containerd-shim-runc-v2", "-namespace", "ns", "-id", "c1", "-address", SOCK]),
    `/run/containerd/s/${hex}`,
  );
  assert.equal(await shimSocketOf(["containerd-shim-runc-v2", "-address", SOCK]), undefined);
});

Deno.test("marginal() is the cost of each container beyond the first, and refuses n ≤ 1", () => {
  assert.equal(marginal(40, 58, 10), 2);
  assert.throws(() => marginal(40, 40, 1), /need n > 1/);
});
