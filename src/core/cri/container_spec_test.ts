/**
 * Berth's CRI specs against containerd 1.6's own, for the same requests: testdata/spec_cases.json holds
 * the requests, testdata/specs the specs containerd built for them (scripts/cri_spec_goldens.ts), and
 * testdata/spec_host.json the facts of the host they depend on, which a fake SpecHost replays here.
 */
import assert from "node:assert/strict";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { encodeSpec, type Spec } from "../../oci/spec.ts";
import type { LinuxDevice } from "../../oci/devices.ts";
import type { ImageConfig } from "../../oci/opts.ts";
import {
  ContainerConfigSchema,
  MountPropagation,
  NamespaceMode,
  PodSandboxConfigSchema,
} from "../../gen/k8s/cri/runtime/v1/api_pb.ts";
import { containerSpec, type ContainerSpecOptions, type CriMount } from "./container_spec.ts";
import { sandboxSpec } from "./sandbox_spec.ts";
import type { SpecHost } from "./spec_host.ts";
import type { MountInfo } from "../mount/mod.ts";

const TESTDATA = new URL("./testdata/", import.meta.url);

interface Cases {
  images: Record<
    string,
    { config: ImageConfig & { Volumes?: Record<string, unknown> }; files: Record<string, string> }
  >;
  host_files: Record<string, string>;
  host_symlinks: Record<string, string>;
  cri: { restrict_oom_score_adj: boolean };
  runtimes: Record<
    string,
    { pod_annotations: string[]; container_annotations: string[]; privileged_without_host_devices: boolean }
  >;
  cases: {
    name: string;
    runtime_handler?: string;
    sandbox: JsonValue;
    containers: { name: string; config: JsonValue; target?: string; error?: string }[];
  }[];
}

interface HostFacts {
  capabilities: string[];
  kernelRelease: string;
  arch: string;
  seccompEnabled: boolean;
  apparmorEnabled: boolean;
  cgroupUnified: boolean;
  swapControllerAvailable: boolean;
  hugetlbControllerPresent: boolean;
  oomScoreAdj: number;
  propagation: Record<string, { mountpoint: string; optional: string }>;
  hostDevices: LinuxDevice[];
}

const cases: Cases = JSON.parse(Deno.readTextFileSync(new URL("spec_cases.json", TESTDATA)));
const facts: HostFacts = JSON.parse(Deno.readTextFileSync(new URL("spec_host.json", TESTDATA)));
const errors: Record<string, string> = JSON.parse(
  Deno.readTextFileSync(new URL("specs/errors.json", TESTDATA)),
);

const SANDBOX_PID = 1111;
const TARGET_PID = 2222;
const HOSTNAME = "fake-host";
const CRI_ROOT = "<root>/io.containerd.grpc.v1.cri";
const CRI_STATE = "<state>/io.containerd.grpc.v1.cri";

/** The host that made the goldens, with <tmp> paths as the cases name them. */
const goldenHost: SpecHost = {
  hostname: () => HOSTNAME,
  capabilities: () => facts.capabilities,
  kernelRelease: () => facts.kernelRelease,
  arch: () => facts.arch,
  seccompEnabled: () => facts.seccompEnabled,
  apparmorEnabled: () => facts.apparmorEnabled,
  appArmorProfileExists: () => Promise.resolve(false),
  cgroupUnified: () => facts.cgroupUnified,
  swapControllerAvailable: () => facts.swapControllerAvailable,
  hugetlbControllerPresent: () => facts.hugetlbControllerPresent,
  oomScoreAdj: () => facts.oomScoreAdj,
  ensurePath: () => Promise.resolve(),
  exists: () => Promise.resolve(true),
  resolveSymlink: (path) => {
    for (const [link, target] of Object.entries(cases.host_symlinks)) {
      if (path === `<tmp>/${link}`) return Promise.resolve(`<tmp>/${link.replace(/[^/]*$/, "")}${target}`);
    }
    return Promise.resolve(path);
  },
  lookupMount: (path) => {
    const key = Object.keys(facts.propagation).filter((k) => path.startsWith(k))
      .sort((a, b) => b.length - a.length)[0];
    const m = key ? facts.propagation[key]! : { mountpoint: "/", optional: "" };
    return Promise.resolve({ ...m } as MountInfo);
  },
  devices: (path, containerPath) => {
    const one = facts.hostDevices.find((d) => d.path === path);
    if (one) return Promise.resolve([{ ...one, path: containerPath || one.path }]);
    return Promise.resolve(
      facts.hostDevices.filter((d) => d.path.startsWith(`${path}/`)).map((d) => ({
        ...d,
        path: containerPath ? containerPath + d.path.slice(path.length) : d.path,
      })),
    );
  },
  hostDevices: () => Promise.resolve(facts.hostDevices.map((d) => ({ ...d }))),
  readTextFile: (path) => {
    const text = cases.host_files[path.replace(/^<tmp>\//, "")];
    return text === undefined ? Promise.reject(new Deno.errors.NotFound(path)) : Promise.resolve(text);
  },
};

/** The spec as containerd stores it, with this test's pids and hostname as the goldens name them. */
function normalised(spec: Spec): unknown {
  const text = new TextDecoder().decode(encodeSpec(spec))
    .replaceAll(`/proc/${SANDBOX_PID}/`, "/proc/<sandbox-pid>/")
    .replaceAll(`/proc/${TARGET_PID}/`, "/proc/<target-pid>/")
    .replaceAll(`"HOSTNAME=${HOSTNAME}"`, '"HOSTNAME=<hostname>"');
  return JSON.parse(text);
}

function golden(path: string): unknown {
  return JSON.parse(Deno.readTextFileSync(new URL(`specs/${path}.json`, TESTDATA)));
}

const userDb = (image: string) => () => {
  const files = cases.images[image]?.files ?? {};
  return Promise.resolve({ passwd: files["etc/passwd"], group: files["etc/group"] });
};

/** The image's volumes as containerd's CreateContainer makes them (a CRI mount of the same path wins). */
function imageVolumes(image: string, requested: readonly CriMount[]): CriMount[] {
  const clean = (p: string) => p.replace(/\/+$/, "");
  return Object.keys(cases.images[image]?.config.Volumes ?? {}).sort()
    .filter((dst) => !requested.some((m) => clean(m.containerPath) === clean(dst)))
    .map((dst) => ({
      containerPath: dst,
      hostPath: `${CRI_ROOT}/containers/<container-id>/volumes/<volume:${dst}>`,
      readonly: false,
      propagation: MountPropagation.PROPAGATION_PRIVATE,
    }));
}

const PAUSE = "berth.test/pause:1";

for (const c of cases.cases) {
  const sandboxConfig = fromJson(PodSandboxConfigSchema, c.sandbox);
  const runtime = cases.runtimes[c.runtime_handler || "runc"]!;
  const hostNetwork = sandboxConfig.linux?.securityContext?.namespaceOptions?.network === NamespaceMode.NODE;

  Deno.test(`sandboxSpec() builds containerd's spec of pod "${c.name}"`, async () => {
    const spec = await sandboxSpec({
      id: "<sandbox-id>",
      config: sandboxConfig,
      image: cases.images[PAUSE]!.config,
      netnsPath: hostNetwork ? "" : `${CRI_STATE}/netns/<netns>`,
      paths: {
        devShm: `${CRI_STATE}/sandboxes/<sandbox-id>/shm`,
        resolvConf: `${CRI_ROOT}/sandboxes/<sandbox-id>/resolv.conf`,
      },
      disableCgroup: false,
      restrictOomScoreAdj: cases.cri.restrict_oom_score_adj,
      enableUnprivilegedPorts: false,
      enableUnprivilegedIcmp: false,
      podAnnotations: runtime.pod_annotations,
      userDb: userDb(PAUSE),
      host: goldenHost,
    });
    assert.deepStrictEqual(normalised(spec), golden(`${c.name}/sandbox`));
  });

  for (const cc of c.containers) {
    const config = fromJson(ContainerConfigSchema, cc.config);
    const image = config.image?.image ?? "";
    const build = () =>
      containerSpec({
        id: "<container-id>",
        sandboxId: "<sandbox-id>",
        sandboxPid: SANDBOX_PID,
        targetPid: cc.target ? TARGET_PID : undefined,
        config,
        sandboxConfig,
        image: cases.images[image]!.config,
        imageName: image,
        sandboxFiles: {
          hostname: `${CRI_ROOT}/sandboxes/<sandbox-id>/hostname`,
          hosts: `${CRI_ROOT}/sandboxes/<sandbox-id>/hosts`,
          resolvConf: `${CRI_ROOT}/sandboxes/<sandbox-id>/resolv.conf`,
          devShm: `${CRI_STATE}/sandboxes/<sandbox-id>/shm`,
        },
        volumeMounts: imageVolumes(image, config.mounts),
        runtime: {
          podAnnotations: runtime.pod_annotations,
          containerAnnotations: runtime.container_annotations,
          privilegedWithoutHostDevices: runtime.privileged_without_host_devices,
        },
        settings: { restrictOomScoreAdj: cases.cri.restrict_oom_score_adj },
        userDb: userDb(image),
        host: goldenHost,
      });
    if (cc.error) {
      Deno.test(`containerSpec() refuses container "${c.name}/${cc.name}" as containerd does`, async () => {
        assert.ok(errors[`${c.name}/${cc.name}`], "containerd refused it too");
        await assert.rejects(build());
      });
      continue;
    }
    Deno.test(`containerSpec() builds containerd's spec of container "${c.name}/${cc.name}"`, async () => {
      assert.deepStrictEqual(normalised(await build()), golden(`${c.name}/${cc.name}`));
    });
  }
}

// ---- what the goldens cannot show: other hosts and other CRI settings --------------------------------

const specCase = cases.cases.find((c) => c.name === "plain")!;
const SPEC_IMAGE = "berth.test/spec:1";

function options(config: JsonValue, overrides: Partial<ContainerSpecOptions> = {}): ContainerSpecOptions {
  const base = fromJson(ContainerConfigSchema, { metadata: { name: "c" }, image: { image: SPEC_IMAGE } });
  const parsed = fromJson(ContainerConfigSchema, config);
  return {
    id: "cid",
    sandboxId: "sid",
    sandboxPid: SANDBOX_PID,
    config: { ...base, ...parsed, metadata: parsed.metadata ?? base.metadata, image: base.image },
    sandboxConfig: fromJson(PodSandboxConfigSchema, specCase.sandbox),
    image: cases.images[SPEC_IMAGE]!.config,
    imageName: SPEC_IMAGE,
    sandboxFiles: {
      hostname: "/s/hostname",
      hosts: "/s/hosts",
      resolvConf: "/s/resolv.conf",
      devShm: "/s/shm",
    },
    runtime: { podAnnotations: [], containerAnnotations: [], privilegedWithoutHostDevices: false },
    userDb: userDb(SPEC_IMAGE),
    host: goldenHost,
    ...overrides,
  };
}

const withHost = (facts: Partial<SpecHost>): SpecHost => ({ ...goldenHost, ...facts });
const privilegedPod = fromJson(PodSandboxConfigSchema, { linux: { security_context: { privileged: true } } });

Deno.test("containerSpec() gives cgroup v2 containers a cgroup namespace, except privileged ones", async () => {
  const host = withHost({ cgroupUnified: () => true });
  const plain = await containerSpec(options({}, { host }));
  assert.deepEqual(plain.linux!.namespaces!.at(-1), { type: "cgroup" });
  const privileged = await containerSpec(
    options({ linux: { security_context: { privileged: true } } }, { host, sandboxConfig: privilegedPod }),
  );
  assert.ok(!privileged.linux!.namespaces!.some((n) => n.type === "cgroup"));
});

Deno.test("containerSpec() sets swap to the memory limit only where the swap controller is", async () => {
  const config = { linux: { resources: { memory_limit_in_bytes: 1024 } } };
  const without = await containerSpec(
    options(config, { host: withHost({ swapControllerAvailable: () => false }) }),
  );
  assert.deepEqual(without.linux!.resources!.memory, { limit: 1024 });
  const swap = await containerSpec(options(config));
  assert.deepEqual(swap.linux!.resources!.memory, { limit: 1024, swap: 1024 });
});

Deno.test("containerSpec() applies hugepage limits only with the hugetlb controller enabled and present", async () => {
  const config = { linux: { resources: { hugepage_limits: [{ page_size: "2MB", limit: 4194304 }] } } };
  const present = withHost({ hugetlbControllerPresent: () => true });
  const byDefault = await containerSpec(options(config, { host: present }));
  assert.equal(byDefault.linux!.resources!.hugepageLimits, undefined);
  const enabled = await containerSpec(
    options(config, { host: present, settings: { disableHugetlbController: false } }),
  );
  assert.deepEqual(enabled.linux!.resources!.hugepageLimits, [{ pageSize: "2MB", limit: 4194304 }]);
  await assert.rejects(
    containerSpec(options(config, {
      settings: { disableHugetlbController: false, tolerateMissingHugetlbController: false },
    })),
    /hugetlb cgroup controller is missing/,
  );
});

Deno.test("containerSpec() gives containerd's apparmor profile where apparmor is enabled", async () => {
  const host = withHost({
    apparmorEnabled: () => true,
    appArmorProfileExists: (name) => Promise.resolve(name === "mine"),
  });
  assert.equal(
    (await containerSpec(options({}, { host }))).process!.apparmorProfile,
    "cri-containerd.apparmor.d",
  );
  const privileged = await containerSpec(
    options({ linux: { security_context: { privileged: true } } }, { host, sandboxConfig: privilegedPod }),
  );
  assert.equal(privileged.process!.apparmorProfile, undefined);
  const local = {
    linux: { security_context: { apparmor: { profile_type: 2, localhost_ref: "localhost/mine" } } },
  };
  assert.equal((await containerSpec(options(local, { host }))).process!.apparmorProfile, "mine");
  const missing = { linux: { security_context: { apparmor_profile: "localhost/other" } } };
  await assert.rejects(containerSpec(options(missing, { host })), /Cannot find apparmor profile "other"/);
  const off = await containerSpec(options({}, { host, settings: { disableApparmor: true } }));
  assert.equal(off.process!.apparmorProfile, undefined);
});

Deno.test("containerSpec() refuses a seccomp profile where the kernel has no seccomp, but not unconfined", async () => {
  const host = withHost({ seccompEnabled: () => false });
  const asked = (type: number) => ({ linux: { security_context: { seccomp: { profile_type: type } } } });
  await assert.rejects(containerSpec(options(asked(0), { host })), /seccomp is not supported/);
  assert.equal((await containerSpec(options(asked(1), { host }))).linux!.seccomp, undefined);
});

Deno.test("containerSpec() applies unset_seccomp_profile to containers that ask for none", async () => {
  const spec = await containerSpec(options({}, { settings: { unsetSeccompProfile: "runtime/default" } }));
  assert.equal((spec.linux!.seccomp as { defaultAction: string }).defaultAction, "SCMP_ACT_ERRNO");
  await assert.rejects(
    containerSpec(
      options({ linux: { security_context: { seccomp: { profile_type: 2, localhost_ref: "/nope.json" } } } }),
    ),
    /Cannot load seccomp profile "\/nope.json"/,
  );
});

Deno.test("containerSpec() keeps a low OOM score unless restrict_oom_score_adj", async () => {
  const config = { linux: { resources: { oom_score_adj: -500 } } };
  assert.equal((await containerSpec(options(config))).process!.oomScoreAdj, -500);
  const host = withHost({ oomScoreAdj: () => -100 });
  const restricted = await containerSpec(options(config, { host, settings: { restrictOomScoreAdj: true } }));
  assert.equal(restricted.process!.oomScoreAdj, -100);
});

Deno.test("containerSpec() leaves cgroups to the runtime with disable_cgroup", async () => {
  const config = { linux: { resources: { cpu_shares: 10 } } };
  const spec = await containerSpec(options(config, { settings: { disableCgroup: true } }));
  assert.equal(spec.linux!.cgroupsPath, undefined);
  assert.equal(spec.linux!.resources!.cpu, undefined);
});

Deno.test("containerSpec() keeps containerd's default masked paths with disable_proc_mount", async () => {
  const spec = await containerSpec(options({}, { settings: { disableProcMount: true } }));
  assert.ok(spec.linux!.maskedPaths!.includes("/proc/kcore"));
  assert.ok(spec.linux!.readonlyPaths!.includes("/proc/sys"));
});

Deno.test("containerSpec() gives devices the run-as owner with device_ownership_from_security_context", async () => {
  const config = {
    devices: [{ container_path: "/dev/xnull", host_path: "/dev/null", permissions: "rw" }],
    linux: { security_context: { run_as_user: { value: 1000 }, run_as_group: { value: 0 } } },
  };
  const spec = await containerSpec(
    options(config, { settings: { deviceOwnershipFromSecurityContext: true } }),
  );
  const dev = (spec.linux!.devices as LinuxDevice[])[0]!;
  assert.deepEqual([dev.path, dev.uid, dev.gid], ["/dev/xnull", 1000, 0]);
});

Deno.test("containerSpec() puts a container under a systemd slice as runc's slice:prefix:name", async () => {
  const sandboxConfig = fromJson(PodSandboxConfigSchema, {
    linux: { cgroup_parent: "/kubepods.slice/kubepods-besteffort.slice" },
  });
  const spec = await containerSpec(options({}, { sandboxConfig }));
  assert.equal(spec.linux!.cgroupsPath, "kubepods-besteffort.slice:cri-containerd:cid");
});

Deno.test("containerSpec() marks the shim group and needs the target's process for a TARGET PID namespace", async () => {
  const spec = await containerSpec(options({}, { shimGroup: "pod-1" }));
  assert.equal(spec.annotations!["io.containerd.runc.v2.group"], "pod-1");
  const target = { linux: { security_context: { namespace_options: { pid: 3, target_id: "t" } } } };
  await assert.rejects(containerSpec(options(target)), /Cannot join the PID namespace of container "t"/);
});

Deno.test("containerSpec() refuses a container without a command when the image has none", async () => {
  const image = { Entrypoint: [""], Cmd: [] };
  await assert.rejects(containerSpec(options({}, { image })), /no command specified/);
});

Deno.test("sandboxSpec() gives the pause process an OOM score of -998 unless restricted", async () => {
  const spec = await sandboxSpec({
    id: "sid",
    config: fromJson(PodSandboxConfigSchema, specCase.sandbox),
    image: cases.images[PAUSE]!.config,
    netnsPath: "/run/netns/x",
    paths: { devShm: "/s/shm", resolvConf: "/s/resolv.conf" },
    disableCgroup: false,
    restrictOomScoreAdj: false,
    enableUnprivilegedPorts: true,
    enableUnprivilegedIcmp: true,
    podAnnotations: [],
    host: goldenHost,
  });
  assert.equal(spec.process!.oomScoreAdj, -998);
  assert.deepEqual(spec.linux!.sysctl, {
    "net.ipv4.ip_unprivileged_port_start": "0",
    "net.ipv4.ping_group_range": "0 2147483647",
  });
});
