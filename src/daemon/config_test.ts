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
    "/etc/berth/config.toml",
  );
  assert.equal(config.version, 3);
  assert.equal(config.grpcAddress, "/x");
  const key = "config key is not implemented by Berth: ignored";
  assert.deepEqual(warnings, [
    { msg: key, fields: { key: "frobnicate", config: "/etc/berth/config.toml" } },
    { msg: key, fields: { key: "grpc.speed", config: "/etc/berth/config.toml" } },
  ]);
});

Deno.test("parseConfig names every containerd key and section Berth does not implement", () => {
  const { warnings } = parseConfig(
    `
version = 2
oom_score = -999
imports = ["/etc/containerd/conf.d/*.toml"]
temp = "/tmp"
plugin_dir = "/opt/plugins"
[grpc]
  address = "/run/b.sock"
  tcp_address = "0.0.0.0:1234"
  max_recv_message_size = 16777216
[ttrpc]
  address = "/run/b.ttrpc"
[debug]
  address = "/run/debug.sock"
  level = "info"
[metrics]
  address = "127.0.0.1:1338"
  grpc_histogram = true
[cgroup]
  path = "/berth"
[timeouts]
  "io.containerd.timeout.shim.cleanup" = "5s"
  "io.containerd.timeout.task.state" = "2s"
[stream_processors]
  [stream_processors."io.containerd.ocicrypt.decoder.v1.tar"]
    accepts = ["application/vnd.oci.image.layer.v1.tar+encrypted"]
[proxy_plugins]
  [proxy_plugins.stargz]
    type = "snapshot"
    address = "/run/stargz.sock"
  [proxy_plugins.differ]
    type = "diff"
    address = "/run/differ.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "pause:3.9"
`,
    "c.toml",
  );
  const named = warnings.map((w) => w.fields.key ?? `[${w.fields.section}] (${w.fields.keys})`);
  assert.deepEqual(named, [
    "oom_score",
    "imports",
    "temp",
    "plugin_dir",
    "grpc.tcp_address",
    "grpc.max_recv_message_size",
    "[ttrpc] (address)",
    "[cgroup] (path)",
    '[timeouts] ("io.containerd.timeout.shim.cleanup", "io.containerd.timeout.task.state")',
    "[proxy_plugins.differ] (type, address)",
  ]);
  assert.ok(warnings.every((w) => w.fields.config === "c.toml"));
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

Deno.test("parseConfig reads containerd's [debug] address, empty when absent", () => {
  assert.equal(
    parseConfig('[debug]\n  address = "/run/berth/debug.sock"\n').config.debugAddress,
    "/run/berth/debug.sock",
  );
  assert.equal(parseConfig("version = 2\n").config.debugAddress, "");
});
