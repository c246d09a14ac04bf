/**
 * The CRI plugin's configuration: `[plugins."io.containerd.grpc.v1.cri"]` read with containerd 1.6's
 * keys and defaults (pkg/cri/config), plus Berth's `shim_group`. Unknown keys are reported by the plugin
 * registry; keys Berth reads but does not act on are listed in NOT_IMPLEMENTED and warned about.
 */
import { parseGoDuration as goDurationOf } from "../../base/duration.ts";
import { invalidArgument } from "../../base/errors.ts";

export interface CriRuntime {
  /** The runtime v2 name: `io.containerd.runc.v2`, or an absolute shim path. */
  readonly runtimeType: string;
  /** `options` (runc: BinaryName, SystemdCgroup, NoPivotRoot, Root, …), as containerd's runc Options. */
  readonly options: Readonly<Record<string, unknown>>;
  readonly podAnnotations: readonly string[];
  readonly containerAnnotations: readonly string[];
  readonly privilegedWithoutHostDevices: boolean;
}

export interface CriConfig {
  readonly sandboxImage: string;
  readonly snapshotter: string;
  readonly defaultRuntimeName: string;
  readonly runtimes: Readonly<Record<string, CriRuntime>>;
  readonly cni: {
    readonly binDirs: readonly string[];
    readonly confDir: string;
    readonly maxConfNum: number;
  };
  readonly registry: {
    readonly configPath: string;
    /** The legacy `registry.mirrors.<host>.endpoint` lists, used when config_path is empty. */
    readonly mirrors: Readonly<Record<string, readonly string[]>>;
  };
  readonly streamServerAddress: string;
  readonly streamServerPort: string;
  readonly streamIdleTimeoutMs: number;
  readonly maxContainerLogLineSize: number;
  readonly maxConcurrentDownloads: number;
  readonly restrictOomScoreAdj: boolean;
  readonly disableProcMount: boolean;
  readonly ignoreImageDefinedVolumes: boolean;
  readonly disableCgroup: boolean;
  readonly disableApparmor: boolean;
  readonly enableUnprivilegedPorts: boolean;
  readonly enableUnprivilegedIcmp: boolean;
  readonly netnsMountsUnderStateDir: boolean;
  readonly tolerateMissingHugetlbController: boolean;
  readonly disableHugetlbController: boolean;
  readonly deviceOwnershipFromSecurityContext: boolean;
  /** The seccomp profile of containers that ask for none. */
  readonly unsetSeccompProfile: string;
  /**
   * Which shim serves a pod's containers: Berth's shared shim of the namespace (the default: a Deno
   * shim costs ~30 MB, several times containerd's Go shim) or one shim per pod, as containerd runs them.
   */
  readonly shimGroup: "namespace" | "pod";
}

/** containerd's CRI namespace. */
export const CRI_NAMESPACE = "k8s.io";

/** The keys of the plugin's table that Berth reads (the registry warns about every other one). */
export const CRI_CONFIG_KEYS = [
  "sandbox_image",
  "containerd",
  "cni",
  "registry",
  "stream_server_address",
  "stream_server_port",
  "stream_idle_timeout",
  "max_container_log_line_size",
  "max_concurrent_downloads",
  "restrict_oom_score_adj",
  "disable_proc_mount",
  "ignore_image_defined_volumes",
  "disable_cgroup",
  "disable_apparmor",
  "enable_unprivileged_ports",
  "enable_unprivileged_icmp",
  "netns_mounts_under_state_dir",
  "shim_group",
  "tolerate_missing_hugetlb_controller",
  "disable_hugetlb_controller",
  "device_ownership_from_security_context",
  "unset_seccomp_profile",
  // Read and accepted as containerd's defaults would be; see NOT_IMPLEMENTED for the ones acted on.
  "disable_tcp_service",
  "enable_selinux",
  "selinux_category_range",
  "stats_collect_period",
  "systemd_cgroup",
  "enable_tls_streaming",
  "image_decryption",
  "x509_key_pair_streaming",
] as const;

/** Keys Berth reads but does not implement: set to anything but containerd's default, they are warned about. */
export const NOT_IMPLEMENTED: Readonly<Record<string, unknown>> = {
  disable_tcp_service: true,
  enable_selinux: false,
  enable_tls_streaming: false,
  systemd_cgroup: false,
};

/** containerd 1.6's default `sandbox_image`; tests and air-gapped hosts set their own. */
export const DEFAULT_SANDBOX_IMAGE = "registry.k8s.io/pause:3.6";
/** Where Debian installs the CNI plugins, searched after containerd's default folder. */
const DEBIAN_CNI_BIN_DIR = "/usr/lib/cni";

type Table = Readonly<Record<string, unknown>>;

function table(v: unknown, key: string): Table {
  if (v === undefined) return {};
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw invalidArgument(`Invalid CRI config "${key}": expected a table`);
  }
  return v as Table;
}

function str(t: Table, key: string, fallback: string, path = key): string {
  const v = t[key] ?? fallback;
  if (typeof v !== "string") throw invalidArgument(`Invalid CRI config "${path}": expected a string`);
  return v;
}

function bool(t: Table, key: string, fallback: boolean, path = key): boolean {
  const v = t[key] ?? fallback;
  if (typeof v !== "boolean") throw invalidArgument(`Invalid CRI config "${path}": expected true or false`);
  return v;
}

function int(t: Table, key: string, fallback: number, path = key): number {
  const v = t[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v)) {
    throw invalidArgument(`Invalid CRI config "${path}": expected a whole number`);
  }
  return v;
}

function strings(t: Table, key: string, path = key): string[] {
  const v = t[key] ?? [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
    throw invalidArgument(`Invalid CRI config "${path}": expected a list of strings`);
  }
  return v as string[];
}

/** Go duration syntax as containerd writes `stream_idle_timeout` ("4h0m0s", "30m", "90s"). */
export function parseGoDuration(text: string, path: string): number {
  try {
    return goDurationOf(text.trim());
  } catch {
    throw invalidArgument(`Invalid CRI config "${path}": "${text}" is not a duration like 4h0m0s`);
  }
}

function runtimeOf(name: string, t: Table): CriRuntime {
  const path = `containerd.runtimes.${name}`;
  return {
    runtimeType: str(t, "runtime_type", "io.containerd.runc.v2", `${path}.runtime_type`),
    options: table(t.options, `${path}.options`),
    podAnnotations: strings(t, "pod_annotations", `${path}.pod_annotations`),
    containerAnnotations: strings(t, "container_annotations", `${path}.container_annotations`),
    privilegedWithoutHostDevices: bool(
      t,
      "privileged_without_host_devices",
      false,
      `${path}.privileged_without_host_devices`,
    ),
  };
}

function mirrorsOf(t: Table): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [host, value] of Object.entries(t)) {
    const path = `registry.mirrors.${JSON.stringify(host)}`;
    out[host] = strings(table(value, path), "endpoint", `${path}.endpoint`);
  }
  return out;
}

/** The configuration from the plugin's table; throws invalidArgument naming the bad key. */
export function parseCriConfig(raw: Table): CriConfig {
  const containerd = table(raw.containerd, "containerd");
  const cni = table(raw.cni, "cni");
  const registry = table(raw.registry, "registry");
  const runtimes: Record<string, CriRuntime> = {
    runc: runtimeOf("runc", { runtime_type: "io.containerd.runc.v2" }),
  };
  for (const [name, value] of Object.entries(table(containerd.runtimes, "containerd.runtimes"))) {
    runtimes[name] = runtimeOf(name, table(value, `containerd.runtimes.${name}`));
  }
  const defaultRuntimeName = str(
    containerd,
    "default_runtime_name",
    "runc",
    "containerd.default_runtime_name",
  );
  if (!runtimes[defaultRuntimeName]) {
    throw invalidArgument(
      `Invalid CRI config "containerd.default_runtime_name": no runtime "${defaultRuntimeName}" is configured`,
    );
  }
  const binDir = str(cni, "bin_dir", "/opt/cni/bin", "cni.bin_dir");
  const shimGroup = str(raw, "shim_group", "namespace");
  if (shimGroup !== "namespace" && shimGroup !== "pod") {
    throw invalidArgument(`Invalid CRI config "shim_group": use "namespace" or "pod", not "${shimGroup}"`);
  }
  return {
    sandboxImage: str(raw, "sandbox_image", DEFAULT_SANDBOX_IMAGE),
    snapshotter: str(containerd, "snapshotter", "overlayfs", "containerd.snapshotter"),
    defaultRuntimeName,
    runtimes,
    cni: {
      binDirs: binDir === DEBIAN_CNI_BIN_DIR ? [binDir] : [binDir, DEBIAN_CNI_BIN_DIR],
      confDir: str(cni, "conf_dir", "/etc/cni/net.d", "cni.conf_dir"),
      maxConfNum: int(cni, "max_conf_num", 1, "cni.max_conf_num"),
    },
    registry: {
      configPath: str(registry, "config_path", "", "registry.config_path"),
      mirrors: mirrorsOf(table(registry.mirrors, "registry.mirrors")),
    },
    streamServerAddress: str(raw, "stream_server_address", "127.0.0.1"),
    streamServerPort: str(raw, "stream_server_port", "0"),
    streamIdleTimeoutMs: parseGoDuration(str(raw, "stream_idle_timeout", "4h0m0s"), "stream_idle_timeout"),
    maxContainerLogLineSize: int(raw, "max_container_log_line_size", 16 * 1024),
    maxConcurrentDownloads: int(raw, "max_concurrent_downloads", 3),
    restrictOomScoreAdj: bool(raw, "restrict_oom_score_adj", false),
    disableProcMount: bool(raw, "disable_proc_mount", false),
    ignoreImageDefinedVolumes: bool(raw, "ignore_image_defined_volumes", false),
    disableCgroup: bool(raw, "disable_cgroup", false),
    disableApparmor: bool(raw, "disable_apparmor", false),
    enableUnprivilegedPorts: bool(raw, "enable_unprivileged_ports", false),
    enableUnprivilegedIcmp: bool(raw, "enable_unprivileged_icmp", false),
    netnsMountsUnderStateDir: bool(raw, "netns_mounts_under_state_dir", false),
    tolerateMissingHugetlbController: bool(raw, "tolerate_missing_hugetlb_controller", true),
    disableHugetlbController: bool(raw, "disable_hugetlb_controller", true),
    deviceOwnershipFromSecurityContext: bool(raw, "device_ownership_from_security_context", false),
    unsetSeccompProfile: str(raw, "unset_seccomp_profile", ""),
    shimGroup,
  };
}

/** The keys of `raw` set to something Berth does not act on (for start-up warnings). */
export function unimplementedSettings(raw: Table): string[] {
  const out: string[] = [];
  for (const [key, def] of Object.entries(NOT_IMPLEMENTED)) {
    if (raw[key] !== undefined && raw[key] !== def) out.push(key);
  }
  const registry = table(raw.registry, "registry");
  for (const key of ["configs", "auths", "headers"]) {
    if (registry[key] !== undefined) out.push(`registry.${key}`);
  }
  if (raw.image_decryption !== undefined) out.push("image_decryption");
  return out;
}

/** Where the plugin lives, for the verbose Status's config. */
export interface CriPaths {
  readonly containerdRootDir: string;
  readonly containerdEndpoint: string;
  readonly rootDir: string;
  readonly stateDir: string;
}

/**
 * The configuration as containerd's verbose Status reports it (`crictl info`'s config): its PluginConfig
 * with containerd's JSON names, so tools reading those keys find them.
 */
export function containerdConfigView(c: CriConfig, paths: CriPaths): Record<string, unknown> {
  const runtime = (r: CriRuntime) => ({
    runtimeType: r.runtimeType,
    runtimePath: "",
    runtimeEngine: "",
    PodAnnotations: r.podAnnotations.length > 0 ? r.podAnnotations : null,
    ContainerAnnotations: r.containerAnnotations.length > 0 ? r.containerAnnotations : null,
    runtimeRoot: "",
    options: r.options,
    privileged_without_host_devices: r.privilegedWithoutHostDevices,
    baseRuntimeSpec: "",
    cniConfDir: "",
    cniMaxConfNum: 0,
  });
  const runtimes = Object.fromEntries(Object.entries(c.runtimes).map(([name, r]) => [name, runtime(r)]));
  return {
    containerd: {
      snapshotter: c.snapshotter,
      defaultRuntimeName: c.defaultRuntimeName,
      defaultRuntime: runtime({ ...EMPTY_RUNTIME }),
      untrustedWorkloadRuntime: runtime({ ...EMPTY_RUNTIME }),
      runtimes,
      noPivot: false,
      disableSnapshotAnnotations: true,
      discardUnpackedLayers: false,
      ignoreRdtNotEnabledErrors: false,
    },
    cni: {
      binDir: c.cni.binDirs[0] ?? "",
      confDir: c.cni.confDir,
      maxConfNum: c.cni.maxConfNum,
      confTemplate: "",
      ipPref: "",
    },
    registry: {
      configPath: c.registry.configPath,
      mirrors: Object.fromEntries(
        Object.entries(c.registry.mirrors).map(([host, endpoint]) => [host, { endpoint }]),
      ),
      configs: null,
      auths: null,
      headers: null,
    },
    imageDecryption: { keyModel: "node" },
    disableTCPService: true,
    streamServerAddress: c.streamServerAddress,
    streamServerPort: c.streamServerPort,
    streamIdleTimeout: goDuration(c.streamIdleTimeoutMs),
    enableSelinux: false,
    selinuxCategoryRange: 1024,
    sandboxImage: c.sandboxImage,
    statsCollectPeriod: 10,
    systemdCgroup: false,
    enableTLSStreaming: false,
    x509KeyPairStreaming: { tlsCertFile: "", tlsKeyFile: "" },
    maxContainerLogSize: c.maxContainerLogLineSize,
    disableCgroup: c.disableCgroup,
    disableApparmor: c.disableApparmor,
    restrictOOMScoreAdj: c.restrictOomScoreAdj,
    maxConcurrentDownloads: c.maxConcurrentDownloads,
    disableProcMount: c.disableProcMount,
    unsetSeccompProfile: c.unsetSeccompProfile,
    tolerateMissingHugetlbController: c.tolerateMissingHugetlbController,
    disableHugetlbController: c.disableHugetlbController,
    device_ownership_from_security_context: c.deviceOwnershipFromSecurityContext,
    ignoreImageDefinedVolumes: c.ignoreImageDefinedVolumes,
    netnsMountsUnderStateDir: c.netnsMountsUnderStateDir,
    enableUnprivilegedPorts: c.enableUnprivilegedPorts,
    enableUnprivilegedICMP: c.enableUnprivilegedIcmp,
    ...paths,
  };
}

const EMPTY_RUNTIME: CriRuntime = {
  runtimeType: "",
  options: {},
  podAnnotations: [],
  containerAnnotations: [],
  privilegedWithoutHostDevices: false,
};

/** Go's time.Duration.String() for whole seconds ("4h0m0s", "30m0s", "0s"). */
function goDuration(ms: number): string {
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  if (h > 0) return `${h}h${m}m${sec}s`;
  if (m > 0) return `${m}m${sec}s`;
  return `${sec}s`;
}
