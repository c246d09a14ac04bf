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
import { hostSpecFacts, type SpecHost } from "./spec_host.ts";
import {
  Annotations,
  cgroupsPath,
  checkSelinuxLevel,
  passthroughAnnotations,
  RELATIVE_ROOTFS,
  restrictOomScoreAdj,
  seccompProfileOf,
  seccompSpecOpt,
  SHIM_GROUP_ANNOTATION,
  withoutDefaultSecuritySettings,
  withSupplementalGroups,
} from "./spec_opts.ts";

// Defined with the container spec's shared pieces; exported here too, where callers found them first.
export { Annotations, cgroupsPath, passthroughAnnotations, restrictOomScoreAdj, SHIM_GROUP_ANNOTATION };

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
  /** The runtime's `pod_annotations`: the pod annotations passed to the spec (path.Match globs). */
  readonly podAnnotations: readonly string[];
  /** Set when every pod has a shim of its own (`shim_group = "pod"`). */
  readonly shimGroup?: string;
  readonly userDb?: () => Promise<UserDb>;
  /** The seccomp profile of pods that ask for none (`unset_seccomp_profile`). */
  readonly unsetSeccompProfile?: string;
  /** The host's facts (seccomp support, the runtime's OOM score); the real host by default. */
  readonly host?: SpecHost;
}

export async function sandboxSpec(o: SandboxSpecOptions): Promise<Spec> {
  const host = o.host ?? hostSpecFacts();
  const entry = [...(o.image.Entrypoint ?? []), ...(o.image.Cmd ?? [])];
  if (entry.length === 0) {
    throw invalidArgument(`Invalid empty entrypoint and cmd in the sandbox image config`);
  }
  const linuxCfg = o.config.linux;
  const sc = linuxCfg?.securityContext;
  const ns = sc?.namespaceOptions;
  const hostNetwork = ns?.network === NamespaceMode.NODE;
  const hostIpc = ns?.ipc === NamespaceMode.NODE;
  checkSelinuxLevel(sc?.selinuxOptions?.level ?? "");
  const opts: SpecOpt[] = [
    withoutMounts("/run"),
    withoutDefaultSecuritySettings,
    (s) => {
      s.root = { ...s.root, path: RELATIVE_ROOTFS };
    },
    withEnv(o.image.Env ?? []),
    withReadonlyRootfs,
    (s) => {
      // Go's omitempty: a host-network pod without a hostname has none in the spec.
      if (o.config.hostname) s.hostname = o.config.hostname;
      else delete s.hostname;
    },
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
    // For kata containers, which set up the pod VM's DNS from it.
    { source: o.paths.resolvConf, destination: "/etc/resolv.conf", type: "bind", options: ["rbind", "ro"] },
  ]));
  // Before the user below, which resets the groups: with run_as_user or an image USER, containerd 1.6
  // drops these (its WithUser clears additionalGids), and the golden specs show it.
  opts.push(withSupplementalGroups(sc?.supplementalGroups ?? []));
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
      ? restrictOomScoreAdj(DEFAULT_SANDBOX_OOM_ADJ, host.oomScoreAdj())
      : DEFAULT_SANDBOX_OOM_ADJ;
  });
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
  // sandboxContainerSpecOpts, applied by containerd once the snapshot exists: seccomp, then the user.
  const seccomp = seccompSpecOpt(seccompProfileOf(sc, o.unsetSeccompProfile ?? ""), {
    privileged: sc?.privileged ?? false,
    host,
  });
  if (seccomp) opts.push(seccomp);
  const user = userString(sc?.runAsUser?.value, sc?.runAsGroup?.value) || o.image.User || "";
  if (user) opts.push(withUser(user));
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
