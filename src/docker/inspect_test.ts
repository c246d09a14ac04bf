import assert from "node:assert/strict";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Spec } from "../oci/mod.ts";
import { GO_ZERO_TIME, inspectContainer, mountPoints, restartPolicy, rfc3339Nano } from "./inspect.ts";
import type { ContainerState } from "./status.ts";

const spec: Spec = {
  ociVersion: "1.1.0",
  hostname: "abc",
  process: {
    user: { uid: 1000, gid: 1000 },
    args: ["nginx", "-g", "daemon off;"],
    env: ["PATH=/usr/bin", "A=1"],
    cwd: "/srv",
    terminal: true,
  },
  root: { path: "rootfs", readonly: true },
  mounts: [
    { destination: "/proc", type: "proc", source: "proc" },
    { destination: "/etc/hosts", type: "bind", source: "/x/hosts", options: ["rbind", "ro"] },
    { destination: "/data", type: "bind", source: "/ds/volumes/ns/data/_data", options: ["rbind", "rw"] },
    { destination: "/host", source: "/srv/host", options: ["rbind", "ro", "rprivate"] },
  ],
  linux: {
    namespaces: [{ type: "pid" }, { type: "network" }],
    resources: { memory: { limit: 64 << 20 }, cpu: { quota: 150000, period: 100000 }, pids: { limit: 50 } },
  },
};
const state: ContainerState = {
  status: "exited",
  running: false,
  paused: false,
  pid: 0,
  exitCode: 137,
  finishedAt: new Date("2025-03-01T12:00:01.5Z"),
};

Deno.test("inspectContainer() gives docker's document from the record, spec, state and addresses", () => {
  const created = timestampFromDate(new Date("2025-03-01T11:00:00Z"));
  created.nanos = 123456789;
  const doc = inspectContainer({
    id: "abc123",
    image: "docker.io/library/nginx:1",
    snapshotter: "overlayfs",
    createdAt: created,
    labels: {
      "nerdctl/name": "web",
      "nerdctl/hostname": "webhost",
      "nerdctl/networks": '["mynet"]',
      "nerdctl/ports": '[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":"0.0.0.0"}]',
      "containerd.io/restart.policy": "on-failure:3",
    },
  }, {
    spec,
    state,
    networks: { mynet: { ip: "10.4.1.5", prefixLen: 24, gateway: "10.4.1.1" } },
    files: { hosts: "/ds/etchosts/ns/abc123/hosts" },
    volumesDir: "/ds/volumes/ns",
  }) as Record<string, Record<string, unknown>>;
  assert.equal(doc.Id, "abc123" as never);
  assert.equal(doc.Name, "/web" as never);
  assert.equal(doc.Created, "2025-03-01T11:00:00.123456789Z" as never);
  assert.equal(doc.Path, "nginx" as never);
  assert.deepEqual(doc.Args, ["-g", "daemon off;"]);
  assert.deepEqual(doc.State, {
    Status: "exited",
    Running: false,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    Dead: false,
    Pid: 0,
    ExitCode: 137,
    Error: "",
    StartedAt: GO_ZERO_TIME,
    FinishedAt: "2025-03-01T12:00:01.5Z",
  });
  assert.equal(doc.HostsPath, "/ds/etchosts/ns/abc123/hosts" as never);
  assert.equal(doc.LogPath, "" as never);
  assert.deepEqual(doc.HostConfig, {
    RestartPolicy: { Name: "on-failure", MaximumRetryCount: 3 },
    PortBindings: { "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "8080" }] },
    NetworkMode: "mynet",
    Memory: 64 << 20,
    NanoCpus: 1_500_000_000,
    PidsLimit: 50,
    ReadonlyRootfs: true,
  });
  assert.deepEqual(doc.Config, {
    Hostname: "webhost",
    User: "1000:1000",
    Tty: true,
    Env: ["PATH=/usr/bin", "A=1"],
    Cmd: ["nginx", "-g", "daemon off;"],
    Image: "docker.io/library/nginx:1",
    WorkingDir: "/srv",
    Labels: (doc.Config as Record<string, unknown>).Labels,
    StopSignal: "",
  });
  assert.deepEqual(doc.NetworkSettings, {
    Ports: { "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "8080" }] },
    IPAddress: "10.4.1.5",
    IPPrefixLen: 24,
    Gateway: "10.4.1.1",
    Networks: {
      mynet: { IPAddress: "10.4.1.5", IPPrefixLen: 24, Gateway: "10.4.1.1", NetworkID: "", MacAddress: "" },
    },
  });
  // From the spec (no nerdctl/mounts label): the user's binds, a volume's by its name; not /etc/hosts.
  assert.deepEqual(doc.Mounts, [
    {
      Type: "volume",
      Name: "data",
      Source: "/ds/volumes/ns/data/_data",
      Destination: "/data",
      Mode: "",
      RW: true,
      Propagation: "",
    },
    { Type: "bind", Source: "/srv/host", Destination: "/host", Mode: "", RW: false, Propagation: "rprivate" },
  ]);
});

Deno.test("inspect helpers: nerdctl/mounts first, restart policies, Go's time format", () => {
  const labels = { "nerdctl/mounts": '[{"Type":"bind","Source":"/a","Destination":"/b","RW":false}]' };
  assert.deepEqual(mountPoints(labels, spec), [
    { Type: "bind", Source: "/a", Destination: "/b", Mode: "", RW: false, Propagation: "" },
  ]);
  assert.deepEqual(restartPolicy(undefined), { Name: "no", MaximumRetryCount: 0 });
  assert.deepEqual(restartPolicy("always"), { Name: "always", MaximumRetryCount: 0 });
  assert.equal(rfc3339Nano(new Date("2025-01-01T00:00:00Z")), "2025-01-01T00:00:00Z");
  assert.equal(rfc3339Nano(undefined), GO_ZERO_TIME);
  // A ctr container without its own network namespace runs on the host's.
  const host = inspectContainer(
    { id: "h", image: "i", snapshotter: "overlayfs", labels: {} },
    { spec: { ...spec, linux: { namespaces: [{ type: "pid" }] } }, state },
  ) as { HostConfig: { NetworkMode: string }; Name: string; Created: string };
  assert.equal(host.HostConfig.NetworkMode, "host");
  assert.equal(host.Name, "/h");
  assert.equal(host.Created, GO_ZERO_TIME);
});
