import assert from "node:assert/strict";
import { berthShimCommand, shimBinaryName, shimCommand } from "./binary.ts";

Deno.test("shimCommand() runs an absolute path as the shim binary and names a missing one as containerd does", () => {
  assert.deepEqual(shimCommand("/bin/sh", {}), ["/bin/sh"]);
  assert.throws(
    () => shimCommand("/nonexistent/containerd-shim-x-v2", {}),
    /^BerthError\(not_found\): invalid custom binary path: stat \/nonexistent\/containerd-shim-x-v2: no such file or directory$/,
  );
});

Deno.test("shimCommand() resolves runtime names: configured binary, Berth's own shim, then PATH", () => {
  assert.deepEqual(shimCommand("io.containerd.runc.v2", {}), berthShimCommand());
  assert.deepEqual(shimCommand("io.containerd.runc.v2", { "io.containerd.runc.v2": "/x/shim" }), ["/x/shim"]);
  // The legacy v1 runtime is not served: its name resolves like any other, to a binary nobody ships.
  assert.throws(
    () => shimCommand("io.containerd.runtime.v1.linux", {}),
    /runtime "io\.containerd\.runtime\.v1\.linux" binary not installed "containerd-shim-v1-linux": file does not exist/,
  );
  assert.throws(() => shimCommand("nope", {}), /invalid runtime name nope, correct runtime name should be/);
  assert.throws(() => shimCommand("", {}), /no runtime name/);
});

Deno.test("shimBinaryName() takes the last two dotted parts, as containerd's BinaryName", () => {
  assert.equal(shimBinaryName("io.containerd.runsc.v1"), "containerd-shim-runsc-v1");
  assert.equal(shimBinaryName("custom.v3"), "containerd-shim-custom-v3");
  assert.equal(shimBinaryName("dir/io.containerd.kata.v2"), "containerd-shim-kata-v2");
  assert.equal(shimBinaryName("single"), undefined);
});
