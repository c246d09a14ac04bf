import assert from "node:assert/strict";
import { type NamedRuntime, resolveRuntime } from "./named.ts";

const runsc: NamedRuntime = {
  runtimeType: "io.containerd.runc.v2",
  options: { typeUrl: "containerd.runc.v1.Options", value: new Uint8Array([0x32, 0x05]) },
};
const named = new Map([["runsc", runsc]]);

Deno.test("resolveRuntime() turns a configured name into its runtime_type and options", () => {
  assert.deepEqual(resolveRuntime("runsc", undefined, named), {
    runtime: "io.containerd.runc.v2",
    options: runsc.options,
  });
});

Deno.test("resolveRuntime() keeps the options a container carries over the configured ones", () => {
  const own = { typeUrl: "containerd.runc.v1.Options", value: new Uint8Array() };
  assert.equal(resolveRuntime("runsc", own, named).options, own);
});

Deno.test("resolveRuntime() passes shim names and paths through unchanged", () => {
  assert.deepEqual(resolveRuntime("io.containerd.runsc.v1", undefined, named), {
    runtime: "io.containerd.runsc.v1",
    options: undefined,
  });
  assert.deepEqual(resolveRuntime("/usr/bin/shim", undefined, named).runtime, "/usr/bin/shim");
});
