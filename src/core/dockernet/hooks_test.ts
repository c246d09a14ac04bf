import assert from "node:assert/strict";
import { hookEnvPaths, isNetworkHook, networkHooks, takeNetworkHooks } from "./hooks.ts";
import { dataStoreOf } from "./paths.ts";

const paths = {
  address: "/run/x/berth.sock",
  namespace: "prod",
  dataStore: dataStoreOf("/tmp/dr", "/run/x/berth.sock"),
  cniBinDirs: ["/opt/cni/bin", "/usr/lib/cni"],
  cniConfDir: "/tmp/net.d",
};

Deno.test("takeNetworkHooks() removes Berth's network hooks, keeps others, and reads their paths back", () => {
  const hooks = networkHooks(paths);
  const other = { path: "/usr/bin/true", args: ["true"] };
  const spec: Record<string, unknown> = {
    annotations: { "nerdctl/networks": '["bridge"]' },
    hooks: { createRuntime: [...hooks.createRuntime, other], poststop: hooks.poststop },
  };
  const taken = takeNetworkHooks(spec);
  const expected = {
    namespace: "prod",
    dataStore: paths.dataStore,
    cniBinDirs: paths.cniBinDirs,
    cniConfDir: "/tmp/net.d",
  };
  assert.deepEqual(taken, { createRuntime: expected, postStop: expected });
  assert.deepEqual(spec.hooks, { createRuntime: [other] }, "the empty poststop list is gone");
  assert.deepEqual(spec.annotations, { "nerdctl/networks": '["bridge"]' });
});

Deno.test("takeNetworkHooks() leaves a spec without Berth's hooks alone", () => {
  const spec: Record<string, unknown> = { hooks: { poststop: [{ path: "/x", args: ["x", "oci-hook"] }] } };
  assert.equal(takeNetworkHooks(spec), undefined);
  assert.deepEqual(spec, { hooks: { poststop: [{ path: "/x", args: ["x", "oci-hook"] }] } });
  assert.equal(takeNetworkHooks({}), undefined);
  const emptied: Record<string, unknown> = { hooks: { poststop: networkHooks(paths).poststop } };
  assert.ok(takeNetworkHooks(emptied)?.postStop);
  assert.equal(emptied.hooks, undefined, "no hooks left: no hooks key");
});

Deno.test("isNetworkHook() matches an entry by its event; hookEnvPaths() falls back to the CLI's defaults", () => {
  const [create] = networkHooks(paths).createRuntime;
  assert.ok(isNetworkHook(create, "createRuntime"));
  assert.equal(isNetworkHook(create, "postStop"), false);
  assert.equal(isNetworkHook({ args: "internal oci-hook createRuntime" }, "createRuntime"), false);
  assert.deepEqual(hookEnvPaths(() => undefined), {
    namespace: "default",
    dataStore: dataStoreOf("/var/lib/berth/docker", "/run/berth/berth.sock"),
    cniBinDirs: ["/opt/cni/bin", "/usr/lib/cni"],
    cniConfDir: "/etc/cni/net.d",
  });
});
