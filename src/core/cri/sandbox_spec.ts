/**
 * The OCI spec of a pod's sandbox (pause) container, as containerd 1.6's CRI builds it
 * (pkg/cri/server/sandbox_run_linux.go `sandboxContainerSpec` and `sandboxContainerSpecOpts`): the
 * image's entrypoint on a read-only rootfs, the pod's namespaces, its /dev/shm and resolv.conf, cgroup
 * parent, sysctls, low OOM score and minimal CPU shares, and the CRI annotations.
 */
import { invalidArgument } from "../../base/errors.ts";
import {
  generateSpec,
  type ImageConfig,
  type SpecOpt,
  withAnnotations,
  withArgs,
  withCgroup,
  withEnv,
  withHostname,
  withHostNamespace,
  withLinuxNamespace,
  withMounts,
  withoutMounts,
  withProcessCwd,
  withReadonlyRootfs,
  withUser,
} from "../../oci/opts.ts";
import type { Spec } from "../../oci/spec.ts";
import type { UserDb } from "../../oci/user.ts";
import { NamespaceMode, type PodSandboxConfig } from "../../gen/k8s/cri/runtime/v1/api_pb.ts";

/** containerd's CRI annotations (pkg/cri/annotations). */
export const Annotations = {
  containerType: "io.kubernetes.cri.container-type",
  containerTypeSandbox: "sandbox",
  containerTypeContainer: "container",
  sandboxId: "io.kubernetes.cri.sandbox-id",
  sandboxNamespace: "io.kubernetes.cri.sandbox-namespace",
  sandboxUid: "io.kubernetes.cri.sandbox-uid",
  sandboxName: "io.kubernetes.cri.sandbox-name",
  sandboxLogDir: "io.kubernetes.cri.sandbox-log-directory",
  sandboxCpuPeriod: "io.kubernetes.cri.sandbox-cpu-period",
  sandboxCpuQuota: "io.kubernetes.cri.sandbox-cpu-quota",
  sandboxCpuShares: "io.kubernetes.cri.sandbox-cpu-shares",
  sandboxMem: "io.kubernetes.cri.sandbox-memory",
  containerName: "io.kubernetes.cri.container-name",
  imageName: "io.kubernetes.cri.image-name",
} as const;

/** The runc shim's group annotation: containers with the same value share one shim. */
export const SHIM_GROUP_ANNOTATION = "io.containerd.runc.v2.group";

const DEFAULT_SANDBOX_OOM_ADJ = -998;
const DEFAULT_SANDBOX_CPU_SHARES = 2;

export interface SandboxPaths {
  /** The pod's /dev/shm (a tmpfs mounted by the CRI), or the host's for host IPC. */
  readonly devShm: string;
  readonly resolvConf: string;
}

export interface SandboxSpecOptions {
  readonly id: string;
  readonly config: PodSandboxConfig;
  readonly image: ImageConfig;
  readonly netnsPath: string;
  readonly paths: SandboxPaths;
  readonly disableCgroup: boolean;
  readonly restrictOomScoreAdj: boolean;
  readonly enableUnprivilegedPorts: boolean;
  readonly enableUnprivilegedIcmp: boolean;
  /** The runtime's `pod_annotations`: the pod annotations passed to the spec (globs with *). */
  readonly podAnnotations: readonly string[];
  /** Set when every pod has a shim of its own (`shim_group = "pod"`). */
  readonly shimGroup?: string;
  readonly userDb?: () => Promise<UserDb>;
}

/** `/<cgroup parent>/<id>`, or systemd's `parent:cri-containerd:id` form when the parent is a slice. */
export function cgroupsPath(parent: string, id: string): string {
  if (parent.endsWith(".slice")) return `${parent}:cri-containerd:${id}`;
  return `${parent.replace(/\/+$/, "")}/${id}`;
}

/** The pod annotations `patterns` lets through (containerd's getPassthroughAnnotations). */
export function passthroughAnnotations(
  annotations: Readonly<Record<string, string>>,
  patterns: readonly string[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(annotations)) {
    for (const p of patterns) {
      const re = new RegExp(
        `^${p.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`,
      );
      if (re.test(k)) {
        out[k] = v;
        break;
      }
    }
  }
  return out;
}

export async function sandboxSpec(o: SandboxSpecOptions): Promise<Spec> {
  const entry = [...(o.image.Entrypoint ?? []), ...(o.image.Cmd ?? [])];
  if (entry.length === 0) {
    throw invalidArgument(`Invalid empty entrypoint and cmd in the sandbox image config`);
  }
  const linuxCfg = o.config.linux;
  const sc = linuxCfg?.securityContext;
  const ns = sc?.namespaceOptions;
  const hostNetwork = ns?.network === NamespaceMode.NODE;
  const hostIpc = ns?.ipc === NamespaceMode.NODE;
  const opts: SpecOpt[] = [
    withoutMounts("/run"),
    (s) => {
      // No default seccomp, apparmor or rlimits for the pause process (containerd's
      // WithoutDefaultSecuritySettings).
      if (s.process) {
        delete s.process.apparmorProfile;
        delete s.process.rlimits;
      }
      if (s.linux) delete s.linux.seccomp;
      s.root = { path: "rootfs", readonly: s.root?.readonly };
    },
    withEnv(o.image.Env ?? []),
    withReadonlyRootfs,
    withHostname(o.config.hostname),
  ];
  if (o.image.WorkingDir) opts.push(withProcessCwd(o.image.WorkingDir));
  opts.push(withArgs(...entry));
  if (o.disableCgroup) {
    opts.push((s) => {
      if (s.linux) delete s.linux.cgroupsPath;
    });
  } else if (linuxCfg?.cgroupParent) opts.push(withCgroup(cgroupsPath(linuxCfg.cgroupParent, o.id)));
  if (hostNetwork) opts.push(withHostNamespace("network"), withHostNamespace("uts"));
  else opts.push(withLinuxNamespace({ type: "network", path: o.netnsPath }));
  if (ns?.pid === NamespaceMode.NODE) opts.push(withHostNamespace("pid"));
  if (hostIpc) opts.push(withHostNamespace("ipc"));
  opts.push(withMounts([
    {
      source: hostIpc ? "/dev/shm" : o.paths.devShm,
      destination: "/dev/shm",
      type: "bind",
      options: ["rbind", "ro"],
    },
    { source: o.paths.resolvConf, destination: "/etc/resolv.conf", type: "bind", options: ["rbind", "ro"] },
  ]));
  const groups = (sc?.supplementalGroups ?? []).map(Number);
  const sysctls: Record<string, string> = { ...linuxCfg?.sysctls };
  if (!hostNetwork) {
    if (o.enableUnprivilegedPorts && !("net.ipv4.ip_unprivileged_port_start" in sysctls)) {
      sysctls["net.ipv4.ip_unprivileged_port_start"] = "0";
    }
    if (o.enableUnprivilegedIcmp && !("net.ipv4.ping_group_range" in sysctls)) {
      sysctls["net.ipv4.ping_group_range"] = "0 2147483647";
    }
  }
  opts.push((s) => {
    const l = s.linux ??= {};
    if (Object.keys(sysctls).length > 0) l.sysctl = { ...l.sysctl, ...sysctls };
    if (!o.disableCgroup) {
      const r = l.resources ??= {};
      r.cpu = { ...r.cpu, shares: DEFAULT_SANDBOX_CPU_SHARES };
    }
    const p = s.process!;
    p.oomScoreAdj = o.restrictOomScoreAdj
      ? restrictOomScoreAdj(DEFAULT_SANDBOX_OOM_ADJ)
      : DEFAULT_SANDBOX_OOM_ADJ;
  });
  const user = userString(sc?.runAsUser?.value, sc?.runAsGroup?.value) || o.image.User || "";
  if (user) opts.push(withUser(user));
  if (groups.length > 0) {
    opts.push((s) => {
      const u = s.process!.user;
      u.additionalGids = [...new Set([...(u.additionalGids ?? []), ...groups])];
    });
  }
  const res = linuxCfg?.resources;
  const annotations: Record<string, string> = {};
  if (res) {
    annotations[Annotations.sandboxCpuPeriod] = String(res.cpuPeriod);
    annotations[Annotations.sandboxCpuQuota] = String(res.cpuQuota);
    annotations[Annotations.sandboxCpuShares] = String(res.cpuShares);
    annotations[Annotations.sandboxMem] = String(res.memoryLimitInBytes);
  }
  Object.assign(annotations, passthroughAnnotations(o.config.annotations, o.podAnnotations));
  Object.assign(annotations, {
    [Annotations.containerType]: Annotations.containerTypeSandbox,
    [Annotations.sandboxId]: o.id,
    [Annotations.sandboxNamespace]: o.config.metadata?.namespace ?? "",
    [Annotations.sandboxUid]: o.config.metadata?.uid ?? "",
    [Annotations.sandboxName]: o.config.metadata?.name ?? "",
    [Annotations.sandboxLogDir]: o.config.logDirectory,
  });
  if (o.shimGroup) annotations[SHIM_GROUP_ANNOTATION] = o.shimGroup;
  opts.push(withAnnotations(annotations));
  return await generateSpec({ namespace: "k8s.io", id: o.id, userDb: o.userDb }, opts);
}

/** containerd's generateUserString: `uid[:gid]` from run_as_user and run_as_group. */
export function userString(uid: bigint | undefined, gid: bigint | undefined): string {
  if (uid === undefined) {
    if (gid !== undefined) throw invalidArgument("Run as group is set without run as user");
    return "";
  }
  return gid === undefined ? String(uid) : `${uid}:${gid}`;
}

/** An OOM score no lower than the daemon's own (restrict_oom_score_adj). */
export function restrictOomScoreAdj(adj: number): number {
  let current = 0;
  try {
    current = Number(Deno.readTextFileSync("/proc/self/oom_score_adj").trim()) || 0;
  } catch { /* not Linux */ }
  return adj < current ? current : adj;
}
