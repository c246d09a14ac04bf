import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  ContainerConfigSchema,
  PodSandboxConfigSchema,
  Protocol,
} from "../../gen/k8s/cri/runtime/v1/api_pb.ts";
import { goJson } from "./go_json.ts";

Deno.test("goJson() writes proto names, numbers for enums and int64s, and leaves zero values out", () => {
  const config = create(PodSandboxConfigSchema, {
    metadata: { name: "web", uid: "u1", namespace: "ns", attempt: 0 },
    logDirectory: "/var/log/pods/x",
    portMappings: [{ protocol: Protocol.UDP, containerPort: 53, hostPort: 5353 }],
    labels: { app: "web" },
    linux: { cgroupParent: "/kubepods", resources: { cpuPeriod: 100000n, memoryLimitInBytes: 0n } },
  });
  assert.deepEqual(goJson(PodSandboxConfigSchema, config), {
    metadata: { name: "web", uid: "u1", namespace: "ns" },
    log_directory: "/var/log/pods/x",
    port_mappings: [{ protocol: 1, container_port: 53, host_port: 5353 }],
    labels: { app: "web" },
    linux: { cgroup_parent: "/kubepods", resources: { cpu_period: 100000 } },
  });
});

Deno.test("goJson() keeps lists of scalars and messages in order", () => {
  const config = create(ContainerConfigSchema, {
    command: ["sh", "-c"],
    envs: [{ key: "A", value: "1" }, { key: "B", value: "" }],
  });
  assert.deepEqual(goJson(ContainerConfigSchema, config), {
    command: ["sh", "-c"],
    envs: [{ key: "A", value: "1" }, { key: "B" }],
  });
});
