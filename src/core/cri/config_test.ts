import assert from "node:assert/strict";
import { DEFAULT_SANDBOX_IMAGE, parseCriConfig, parseGoDuration, unimplementedSettings } from "./config.ts";

Deno.test("parseCriConfig() gives containerd 1.6's defaults for an empty table", () => {
  const c = parseCriConfig({});
  assert.equal(c.sandboxImage, DEFAULT_SANDBOX_IMAGE);
  assert.equal(c.snapshotter, "overlayfs");
  assert.equal(c.defaultRuntimeName, "runc");
  assert.equal(c.runtimes.runc?.runtimeType, "io.containerd.runc.v2");
  assert.deepEqual(c.cni.binDirs, ["/opt/cni/bin", "/usr/lib/cni"]);
  assert.equal(c.cni.confDir, "/etc/cni/net.d");
  assert.equal(c.streamServerAddress, "127.0.0.1");
  assert.equal(c.streamServerPort, "0");
  assert.equal(c.streamIdleTimeoutMs, 4 * 3600_000);
  assert.equal(c.maxContainerLogLineSize, 16384);
  assert.equal(c.shimGroup, "namespace");
});

Deno.test("parseCriConfig() reads containerd's keys, runtimes and Berth's shim_group", () => {
  const c = parseCriConfig({
    sandbox_image: "127.0.0.1:5000/pause:1",
    containerd: {
      snapshotter: "native",
      default_runtime_name: "gvisor",
      runtimes: { gvisor: { runtime_type: "io.containerd.runsc.v1", options: { TypeUrl: "x" } } },
    },
    cni: { bin_dir: "/usr/lib/cni", conf_dir: "/tmp/net.d" },
    registry: { config_path: "/etc/containerd/certs.d" },
    stream_idle_timeout: "1h30m",
    shim_group: "pod",
  });
  assert.equal(c.sandboxImage, "127.0.0.1:5000/pause:1");
  assert.equal(c.runtimes.gvisor?.runtimeType, "io.containerd.runsc.v1");
  assert.deepEqual(c.runtimes.gvisor?.options, { TypeUrl: "x" });
  assert.deepEqual(c.cni.binDirs, ["/usr/lib/cni"]);
  assert.equal(c.registry.configPath, "/etc/containerd/certs.d");
  assert.equal(c.streamIdleTimeoutMs, 5400_000);
  assert.equal(c.shimGroup, "pod");
});

Deno.test("parseCriConfig() names the key that is wrong", () => {
  assert.throws(() => parseCriConfig({ sandbox_image: 3 }), /"sandbox_image": expected a string/);
  assert.throws(() => parseCriConfig({ containerd: { default_runtime_name: "kata" } }), /no runtime "kata"/);
  assert.throws(() => parseCriConfig({ shim_group: "container" }), /"shim_group": use "namespace" or "pod"/);
  assert.throws(() => parseGoDuration("4 hours", "stream_idle_timeout"), /not a duration/);
});

Deno.test("unimplementedSettings() lists keys set away from containerd's defaults that Berth ignores", () => {
  assert.deepEqual(unimplementedSettings({ disable_tcp_service: true, enable_selinux: false }), []);
  assert.deepEqual(
    unimplementedSettings({ enable_selinux: true, registry: { mirrors: {}, configs: {} } }),
    ["enable_selinux", "registry.configs"],
  );
});

Deno.test("parseCriConfig() reads registry mirrors and the spec settings containerd has", () => {
  const c = parseCriConfig({
    registry: { mirrors: { "docker.io": { endpoint: ["https://mirror.example", "127.0.0.1:5000"] } } },
    unset_seccomp_profile: "runtime/default",
    device_ownership_from_security_context: true,
  });
  assert.deepEqual(c.registry.mirrors, { "docker.io": ["https://mirror.example", "127.0.0.1:5000"] });
  assert.equal(c.unsetSeccompProfile, "runtime/default");
  assert.equal(c.deviceOwnershipFromSecurityContext, true);
  assert.equal(c.disableHugetlbController, true);
  assert.throws(
    () => parseCriConfig({ registry: { mirrors: { "docker.io": { endpoint: "x" } } } }),
    /"registry.mirrors."docker.io".endpoint": expected a list of strings/,
  );
});
