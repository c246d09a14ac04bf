import assert from "node:assert/strict";
import { isRunsc, runscNetworkArgs } from "./runsc.ts";

Deno.test("isRunsc() knows runsc by name or path, not wrappers under another name", () => {
  assert.equal(isRunsc("runsc"), true);
  assert.equal(isRunsc("/usr/bin/runsc"), true);
  assert.equal(isRunsc("/usr/local/bin/runsc-ptrace"), false);
  assert.equal(isRunsc("runc"), false);
});

Deno.test("runscNetworkArgs() maps the spec's network namespace to runsc's --network", () => {
  assert.deepEqual(runscNetworkArgs({ linux: { namespaces: [{ type: "pid" }] } }), ["--network=host"]);
  assert.deepEqual(runscNetworkArgs({ linux: { namespaces: [{ type: "network" }] } }), ["--network=none"]);
  assert.deepEqual(
    runscNetworkArgs({ linux: { namespaces: [{ type: "network", path: "/var/run/netns/cni-1" }] } }),
    [],
  );
  assert.deepEqual(runscNetworkArgs({}), ["--network=host"]);
});
