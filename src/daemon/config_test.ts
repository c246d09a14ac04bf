import assert from "node:assert/strict";
import { loadConfig, parseConfig, pluginConfig } from "./config.ts";

Deno.test("parseConfig reads containerd's version 2 keys", () => {
  const { config, warnings } = parseConfig(`
version = 2
root = "/data/berth"
state = "/run/b"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
required_plugins = ["io.containerd.grpc.v1.version"]
[grpc]
  address = "/run/b/b.sock"
  uid = 0
  gid = 42
[debug]
  level = "debug"
  format = "json"
[plugins."io.containerd.snapshotter.v1.overlayfs"]
  root_path = "/fast"
`);
  assert.deepEqual(warnings, []);
  assert.equal(config.root, "/data/berth");
  assert.equal(config.state, "/run/b");
  assert.equal(config.grpcAddress, "/run/b/b.sock");
  assert.equal(config.grpcGid, 42);
  assert.equal(config.logLevel, "debug");
  assert.equal(config.logFormat, "json");
  assert.deepEqual(config.disabledPlugins, ["io.containerd.grpc.v1.cri"]);
  assert.deepEqual(config.requiredPlugins, ["io.containerd.grpc.v1.version"]);
  assert.deepEqual({ ...pluginConfig(config, "io.containerd.snapshotter.v1", "overlayfs") }, {
    root_path: "/fast",
  });
  assert.deepEqual(pluginConfig(config, "io.containerd.snapshotter.v1", "native"), {});
});

Deno.test("parseConfig accepts version 3 and warns about unknown keys without failing", () => {
  const { config, warnings } = parseConfig(
    'version = 3\nfrobnicate = true\n[grpc]\n  address = "/x"\n  speed = 9\n',
  );
  assert.equal(config.version, 3);
  assert.equal(config.grpcAddress, "/x");
  assert.equal(warnings.length, 2);
  assert.match(warnings[0]!, /Unknown key "frobnicate"/);
  assert.match(warnings[1]!, /Unknown key "grpc.speed"/);
});

Deno.test("parseConfig names the file and line of a syntax error", () => {
  assert.throws(
    () => parseConfig('version = 2\n\n[debug\nlevel = "info"\n', "/etc/berth/config.toml"),
    (err: Error) => {
      assert.match(err.message, /Malformed config \/etc\/berth\/config\.toml at line 3/);
      return true;
    },
  );
});

Deno.test("parseConfig rejects values of the wrong type and unknown log levels", () => {
  assert.throws(() => parseConfig("root = 7\n"), /"root" must be a string/);
  assert.throws(() => parseConfig('[debug]\nlevel = "loud"\n'), /Unknown log level "loud"/);
  assert.throws(() => parseConfig("version = 9\n"), /Unsupported config version 9/);
});

Deno.test("loadConfig treats a missing default file as no config, and a missing named file as an error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { config } = await loadConfig(`${dir}/absent.toml`, { optional: true });
    assert.equal(config.root, "/var/lib/berth");
    await assert.rejects(loadConfig(`${dir}/absent.toml`), /Cannot read config/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
