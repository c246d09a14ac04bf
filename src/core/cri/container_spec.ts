/**
 * The OCI spec of a CRI container, as containerd 1.6 builds it: pkg/cri/server/container_create_linux.go
 * `containerSpec` (the spec from the CRI request, over containerd's default Linux spec) followed by
 * `containerSpecOpts` (user, groups, apparmor and seccomp, which containerd applies once the rootfs
 * snapshot exists). The options run in containerd's order, because later ones read what earlier ones
 * wrote (the seccomp profile follows the capabilities; WithUser resets the groups).
 *
 * SELinux is taken as disabled (Berth does not implement enable_selinux): no labels, no relabelling.
 */
import { BerthError, failedPrecondition, invalidArgument, notFound } from "../../base/errors.ts";
import { goSort } from "../../base/go_sort.ts";
import { type LinuxDevice, withDevices } from "../../oci/devices.ts";
import {
  generateSpec,
  type ImageConfig,
  type SpecOpt,
  withAnnotations,
  withCgroup,
  withEnv,
  withLinuxNamespace,
  withoutMounts,
  withProcessCwd,
  withReadonlyRootfs,
  withUser,
} from "../../oci/opts.ts";
import { DEFAULT_PATH_ENV, type Mount as SpecMount, type Spec } from "../../oci/spec.ts";
import { parseGroup, parsePasswd, type UserDb } from "../../oci/user.ts";
import {
  type ContainerConfig,
  type LinuxContainerResources,
  type LinuxContainerSecurityContext,
  MountPropagation,
  NamespaceMode,
  type PodSandboxConfig,
  SecurityProfile_ProfileType as ProfileType,
} from "../../gen/k8s/cri/runtime/v1/api_pb.ts";
import type { SandboxPaths } from "./sandbox_spec.ts";
import { hostSpecFacts, type SpecHost } from "./spec_host.ts";
import {
  Annotations,
  cgroupsPath,
  checkSelinuxLevel,
  cleanPath as clean,
  linux,
  mergeGids,
  parseProfilePath,
  passthroughAnnotations,
  proc,
  type Profile,
  RELATIVE_ROOTFS,
  restrictOomScoreAdj,
  seccompProfileOf,
  seccompSpecOpt,
  SHIM_GROUP_ANNOTATION,
  trimLocalhost,
  withoutDefaultSecuritySettings,
  withSupplementalGroups,
} from "./spec_opts.ts";

/** The files of the pod every container gets (in containerd's sandbox root and state folders). */
export interface ContainerSandboxFiles extends SandboxPaths {
  /** Mounted as /etc/hostname when it exists (sandboxes of containerd < 1.1.6 have none). */
  readonly hostname: string;
  readonly hosts: string;
}

/** A CRI mount (runtime.v1.Mount has these fields; image volumes made by the caller too). */
export interface CriMount {
  readonly containerPath: string;
  readonly hostPath: string;
  readonly readonly: boolean;
  readonly propagation: MountPropagation;
}

/** What of the pod's runtime handler (`containerd.runtimes.<name>`) the spec depends on. */
export interface ContainerRuntimeSettings {
  readonly podAnnotations: readonly string[];
  readonly containerAnnotations: readonly string[];
  readonly privilegedWithoutHostDevices: boolean;
}

/** The CRI config values the spec depends on; unset ones take containerd 1.6's defaults. */
export interface ContainerSpecSettings {
  readonly restrictOomScoreAdj?: boolean;
  readonly disableProcMount?: boolean;
  readonly disableCgroup?: boolean;
  readonly disableApparmor?: boolean;
  /** The seccomp profile of containers that ask for none (`unset_seccomp_profile`). */
  readonly unsetSeccompProfile?: string;
  /** Default true. */
  readonly tolerateMissingHugetlbController?: boolean;
  /** Default true: hugepage limits are dropped. */
  readonly disableHugetlbController?: boolean;
  readonly deviceOwnershipFromSecurityContext?: boolean;
}

export interface ContainerSpecOptions {
  readonly id: string;
  readonly sandboxId: string;
  /** The pod's sandbox (pause) process: the container joins its network, IPC, UTS and PID namespaces. */
  readonly sandboxPid: number;
  /** With PID namespace mode TARGET: the target container's process, whose PID namespace is joined. */
  readonly targetPid?: number;
  readonly config: ContainerConfig;
  readonly sandboxConfig: PodSandboxConfig;
  readonly image: ImageConfig;
  /** The image's name as containerd resolved it (the image-name annotation). */
  readonly imageName: string;
  readonly sandboxFiles: ContainerSandboxFiles;
  /** Volumes the image declares, made by the caller (a CRI mount of the same path wins). */
  readonly volumeMounts?: readonly CriMount[];
  readonly runtime: ContainerRuntimeSettings;
  readonly settings?: ContainerSpecSettings;
  /** Set when every pod has a shim of its own (`shim_group = "pod"`). */
  readonly shimGroup?: string;
  /** The container rootfs's /etc/passwd and /etc/group, for user names and supplementary groups. */
  readonly userDb?: () => Promise<UserDb>;
  /** The host's facts and file system; the real host by default. */
  readonly host?: SpecHost;
}

const ETC_HOSTNAME = "/etc/hostname";
const ETC_HOSTS = "/etc/hosts";
const RESOLV_CONF = "/etc/resolv.conf";
const DEV_SHM = "/dev/shm";
/** containerd's default apparmor profile name for CRI containers (loaded by contrib/apparmor). */
export const APPARMOR_DEFAULT_PROFILE = "cri-containerd.apparmor.d";

/** containerd's CreateContainer + containerSpec + containerSpecOpts, for Linux. */
export async function containerSpec(o: ContainerSpecOptions): Promise<Spec> {
  const host = o.host ?? hostSpecFacts();
  const ctx = { namespace: "k8s.io", id: o.id, userDb: o.userDb };
  const spec = await generateSpec(ctx, [...await specOpts(o, host)]);
  const after = userAndSecurityOpts(o, host);
  for (const opt of after) await opt(spec, ctx);
  return spec;
}

const inCriMounts = (dst: string, mounts: readonly CriMount[]) =>
  mounts.some((m) => clean(m.containerPath) === clean(dst));

/** containerMounts: the pod's hostname, hosts, resolv.conf and /dev/shm, unless the request mounts them. */
async function sandboxFileMounts(o: ContainerSpecOptions, host: SpecHost): Promise<CriMount[]> {
  const sc = o.config.linux?.securityContext;
  const ro = sc?.readonlyRootfs ?? false;
  const requested = o.config.mounts;
  const out: CriMount[] = [];
  const file = (containerPath: string, hostPath: string, readonly = ro): CriMount => ({
    containerPath,
    hostPath,
    readonly,
    propagation: MountPropagation.PROPAGATION_PRIVATE,
  });
  if (!inCriMounts(ETC_HOSTNAME, requested) && await host.exists(o.sandboxFiles.hostname)) {
    out.push(file(ETC_HOSTNAME, o.sandboxFiles.hostname));
  }
  if (!inCriMounts(ETC_HOSTS, requested)) out.push(file(ETC_HOSTS, o.sandboxFiles.hosts));
  if (!inCriMounts(RESOLV_CONF, requested)) out.push(file(RESOLV_CONF, o.sandboxFiles.resolvConf));
  if (!inCriMounts(DEV_SHM, requested)) {
    const hostIpc = sc?.namespaceOptions?.ipc === NamespaceMode.NODE;
    out.push(file(DEV_SHM, hostIpc ? DEV_SHM : o.sandboxFiles.devShm, false));
  }
  return out;
}

/** The spec from the CRI request (containerd's containerSpec): these groups, in containerd's order. */
async function specOpts(o: ContainerSpecOptions, host: SpecHost): Promise<SpecOpt[]> {
  checkSelinuxLevel(o.config.linux?.securityContext?.selinuxOptions?.level ?? "");
  const extra = [...await sandboxFileMounts(o, host), ...(o.volumeMounts ?? [])];
  return [
    ...processOpts(o, host),
    withCriMounts(o.config.mounts, extra, host),
    ...securityContextOpts(o, host),
    ...cgroupOpts(o, host),
    ...podOpts(o, host),
  ];
}

/** The rootfs, args, env, working dir and terminal; no default security settings or /run. */
function processOpts(o: ContainerSpecOptions, host: SpecHost): SpecOpt[] {
  const config = o.config;
  const opts: SpecOpt[] = [
    withoutMounts("/run"),
    withoutDefaultSecuritySettings,
    (s) => {
      s.root = { ...s.root, path: RELATIVE_ROOTFS };
    },
    withProcessArgs(config, o.image),
    withEnv([DEFAULT_PATH_ENV]),
    // Set from the security context below.
    (s) => {
      delete proc(s).noNewPrivileges;
    },
  ];
  if (config.workingDir) opts.push(withProcessCwd(config.workingDir));
  else if (o.image.WorkingDir) opts.push(withProcessCwd(o.image.WorkingDir));
  if (config.tty) {
    opts.push((s) => {
      const p = proc(s);
      p.terminal = true;
      // oci.WithTTY appends, without replacing an earlier TERM.
      p.env = [...(p.env ?? []), "TERM=xterm"];
    });
  }
  opts.push(withEnv([`HOSTNAME=${o.sandboxConfig.hostname || host.hostname()}`]));
  // The image's env first, so that the request's can override it.
  opts.push(withEnv([...(o.image.Env ?? []), ...config.envs.map((e) => `${e.key}=${e.value}`)]));
  return opts;
}

/** Masked and read-only paths, devices, capabilities, privileged, no new privileges, read-only rootfs. */
function securityContextOpts(o: ContainerSpecOptions, host: SpecHost): SpecOpt[] {
  const settings = o.settings ?? {};
  const sc = o.config.linux?.securityContext;
  const opts: SpecOpt[] = [];
  if (!settings.disableProcMount) {
    // containerd 1.6 clears the defaults (containerd#5029): the kubelet sends the paths it wants.
    opts.push((s) => {
      const l = linux(s);
      delete l.maskedPaths;
      delete l.readonlyPaths;
      if (sc?.maskedPaths.length) l.maskedPaths = [...sc.maskedPaths];
      if (sc?.readonlyPaths.length) l.readonlyPaths = [...sc.readonlyPaths];
    });
  }
  opts.push(withCriDevices(o.config, host, settings.deviceOwnershipFromSecurityContext ?? false));
  opts.push(withCapabilities(sc, host.capabilities()));
  if (sc?.privileged) {
    if (!o.sandboxConfig.linux?.securityContext?.privileged) {
      const name = o.config.metadata?.name ?? "";
      throw failedPrecondition(
        `Cannot create privileged container "${name}": its pod sandbox is not privileged`,
      );
    }
    opts.push(withPrivileged(host.capabilities()));
    if (!o.runtime.privilegedWithoutHostDevices) {
      opts.push(async (s) => {
        const l = linux(s);
        l.devices = [...(l.devices ?? []), ...await host.hostDevices()];
        (l.resources ??= {}).devices = [{ allow: true, access: "rwm" }];
      });
    }
  }
  // Ambient capabilities of non-root users are not defined by Kubernetes (kubernetes#56374): none.
  opts.push((s) => {
    const c = proc(s).capabilities ??= {};
    delete c.ambient;
  });
  if (sc?.noNewPrivs) opts.push((s) => void (proc(s).noNewPrivileges = true));
  if (sc?.readonlyRootfs) opts.push(withReadonlyRootfs);
  return opts;
}

/** Resources and the cgroup under the pod's parent, or none at all with disable_cgroup. */
function cgroupOpts(o: ContainerSpecOptions, host: SpecHost): SpecOpt[] {
  const settings = o.settings ?? {};
  if (settings.disableCgroup) return [(s) => void delete linux(s).cgroupsPath];
  const opts = [withResources(o.config.linux?.resources, settings, host)];
  const parent = o.sandboxConfig.linux?.cgroupParent;
  if (parent) opts.push(withCgroup(cgroupsPath(parent, o.id)));
  return opts;
}

/** The OOM score, the pod's namespaces, supplementary groups, annotations, and a cgroup namespace. */
function podOpts(o: ContainerSpecOptions, host: SpecHost): SpecOpt[] {
  const config = o.config;
  const sc = config.linux?.securityContext;
  const annotations: Record<string, string> = {
    ...passthroughAnnotations(o.sandboxConfig.annotations, o.runtime.podAnnotations),
    ...passthroughAnnotations(config.annotations, o.runtime.containerAnnotations),
  };
  const ns = sc?.namespaceOptions;
  let targetPid = o.sandboxPid;
  if (ns?.pid === NamespaceMode.TARGET) {
    if (o.targetPid === undefined) {
      throw invalidArgument(
        `Cannot join the PID namespace of container "${ns.targetId}": its process is not known`,
      );
    }
    targetPid = o.targetPid;
  }
  Object.assign(annotations, {
    [Annotations.containerType]: Annotations.containerTypeContainer,
    [Annotations.sandboxId]: o.sandboxId,
    [Annotations.sandboxNamespace]: o.sandboxConfig.metadata?.namespace ?? "",
    [Annotations.sandboxUid]: o.sandboxConfig.metadata?.uid ?? "",
    [Annotations.sandboxName]: o.sandboxConfig.metadata?.name ?? "",
    [Annotations.containerName]: config.metadata?.name ?? "",
    [Annotations.imageName]: o.imageName,
  });
  if (o.shimGroup) annotations[SHIM_GROUP_ANNOTATION] = o.shimGroup;
  const opts = [
    withOomScoreAdj(config.linux?.resources, o.settings?.restrictOomScoreAdj ?? false, host),
    withPodNamespaces(ns?.pid ?? NamespaceMode.POD, o.sandboxPid, targetPid),
    withSupplementalGroups(sc?.supplementalGroups ?? []),
    withAnnotations(annotations),
  ];
  // A cgroup namespace hides the host's cgroup tree; on cgroup v1, and for privileged containers,
  // containerd leaves it out for compatibility (libpod#4363).
  if (host.cgroupUnified() && !sc?.privileged) opts.push(withLinuxNamespace({ type: "cgroup" }));
  return opts;
}

/** containerSpecOpts: what containerd applies with the rootfs at hand, after the spec above. */
function userAndSecurityOpts(o: ContainerSpecOptions, host: SpecHost): SpecOpt[] {
  const sc = o.config.linux?.securityContext;
  const opts: SpecOpt[] = [];
  const user = containerUserString(sc) || (o.image.User ?? "");
  if (user) opts.push(withUser(user));
  // Without run_as_user, uid 0's groups: the kubelet's default user is root.
  const groupsOf = sc?.runAsUsername || String(sc?.runAsUser?.value ?? 0n);
  opts.push(withMergedAdditionalGids(groupsOf), withSupplementalGroups(sc?.supplementalGroups ?? []));
  const privileged = sc?.privileged ?? false;
  const apparmor = sc?.apparmor ?? (sc?.apparmorProfile ? parseProfilePath(sc.apparmorProfile) : undefined);
  const apparmorOpt = apparmorSpecOpt(apparmor, {
    privileged,
    enabled: !o.settings?.disableApparmor && host.apparmorEnabled(),
    host,
  });
  if (apparmorOpt) opts.push(apparmorOpt);
  const seccomp = seccompProfileOf(sc, o.settings?.unsetSeccompProfile ?? "");
  const seccompOpt = seccompSpecOpt(seccomp, { privileged, host });
  if (seccompOpt) opts.push(seccompOpt);
  return opts;
}

// ---- process ----------------------------------------------------------------------------------------

/**
 * containerd's customopts.WithProcessArgs (moby's rules): the request's command, else the image's
 * entrypoint unless it is `[""]`; the request's args, else the image's Cmd when no command was given.
 */
export function withProcessArgs(config: ContainerConfig, image: ImageConfig): SpecOpt {
  return (s) => {
    let command: string[] | undefined = config.command.length > 0 ? [...config.command] : undefined;
    let args = [...config.args];
    if (!command) {
      if (args.length === 0) args = [...(image.Cmd ?? [])];
      const ep = image.Entrypoint ?? [];
      if (!(ep.length === 1 && ep[0] === "")) command = [...ep];
    }
    const all = [...(command ?? []), ...args];
    if (all.length === 0) {
      throw invalidArgument(`Cannot create container "${config.metadata?.name ?? ""}": no command specified`);
    }
    proc(s).args = all;
  };
}

/** containerd's generateUserString: `user[:gid]`, the name winning over the uid. */
function containerUserString(sc: LinuxContainerSecurityContext | undefined): string {
  let user = sc?.runAsUser !== undefined ? String(sc.runAsUser.value) : "";
  if (sc?.runAsUsername) user = sc.runAsUsername;
  const group = sc?.runAsGroup !== undefined ? String(sc.runAsGroup.value) : "";
  if (user === "") {
    if (group !== "") throw invalidArgument(`Invalid user: group ${group} is specified without a user`);
    return "";
  }
  return group !== "" ? `${user}:${group}` : user;
}

/**
 * customopts.WithAdditionalGIDs: the groups of `user` in the rootfs's /etc/group (plus the process GID,
 * as oci.WithAdditionalGIDs), merged with the ones already set.
 */
function withMergedAdditionalGids(user: string): SpecOpt {
  return async (s, ctx) => {
    const u = proc(s).user;
    const before = u.additionalGids;
    const db = await (ctx.userDb?.() ?? Promise.resolve<UserDb>({}));
    let found: number[] | undefined;
    let name: string | undefined = user;
    if (/^[+-]?\d+$/.test(user)) {
      const uid = Number(user);
      name = db.passwd === undefined ? undefined : parsePasswd(db.passwd).find((e) => e.uid === uid)?.name;
    }
    if (name !== undefined && db.group !== undefined) {
      found = parseGroup(db.group).filter((g) => g.name !== name && g.members.includes(name!)).map((g) =>
        g.gid
      );
    }
    const gids = found ?? [];
    if (!gids.includes(u.gid)) gids.unshift(u.gid);
    u.additionalGids = mergeGids(gids, before);
  };
}

// ---- mounts -----------------------------------------------------------------------------------------

const depth = (m: CriMount) => (clean(m.containerPath).match(/\//g) ?? []).length;

/**
 * customopts.WithMounts: the request's mounts, then the extra ones it does not cover, sorted by depth
 * (Go's unstable sort.Sort, reproduced); the default mounts they replace (all of /dev's when /dev is
 * mounted) dropped; cgroupfs read-only; each host path created when missing and checked for the
 * propagation asked.
 */
function withCriMounts(requested: readonly CriMount[], extra: readonly CriMount[], host: SpecHost): SpecOpt {
  return async (s) => {
    const mounts = [...requested];
    for (const e of extra) if (!inCriMounts(e.containerPath, requested)) mounts.push(e);
    goSort(mounts, (a, b) => depth(a) < depth(b));
    const defaults: SpecMount[] = [...(s.mounts ?? []), {
      destination: "/sys/fs/cgroup",
      type: "cgroup",
      source: "cgroup",
      options: ["nosuid", "noexec", "nodev", "relatime", "ro"],
    }];
    const taken = new Set(mounts.map((m) => clean(m.containerPath)));
    s.mounts = defaults.filter((m) => {
      const dst = clean(m.destination);
      return !taken.has(dst) && !(taken.has("/dev") && dst.startsWith("/dev/"));
    });
    const l = linux(s);
    for (const m of mounts) {
      const src = await hostPathOf(m.hostPath, host);
      const options = ["rbind"];
      switch (m.propagation) {
        case MountPropagation.PROPAGATION_PRIVATE:
          // runc's default root propagation is rprivate already.
          options.push("rprivate");
          break;
        case MountPropagation.PROPAGATION_BIDIRECTIONAL:
          await ensurePropagation(src, ["shared:"], "a shared mount", host);
          options.push("rshared");
          l.rootfsPropagation = "rshared";
          break;
        case MountPropagation.PROPAGATION_HOST_TO_CONTAINER:
          await ensurePropagation(src, ["shared:", "master:"], "a shared or slave mount", host);
          options.push("rslave");
          if (l.rootfsPropagation !== "rshared" && l.rootfsPropagation !== "rslave") {
            l.rootfsPropagation = "rslave";
          }
          break;
        default:
          options.push("rprivate");
      }
      // A read-only rootfs leaves the volumes writable (unlike Docker): only the mount's own flag counts.
      options.push(m.readonly ? "ro" : "rw");
      s.mounts.push({ destination: m.containerPath, type: "bind", source: src, options });
    }
  };
}

/** The host path of a mount, created when missing and with a symlink resolved, as containerd does. */
async function hostPathOf(path: string, host: SpecHost): Promise<string> {
  try {
    await host.ensurePath(path);
    return await host.resolveSymlink(path);
  } catch (err) {
    if (err instanceof BerthError) throw err;
    throw invalidArgument(`Cannot mount host path "${path}": ${(err as Error).message}`, { cause: err });
  }
}

async function ensurePropagation(
  path: string,
  prefixes: string[],
  what: string,
  host: SpecHost,
): Promise<void> {
  const info = await host.lookupMount(path);
  if (info.optional.split(" ").some((o) => prefixes.some((p) => o.startsWith(p)))) return;
  throw failedPrecondition(
    `Cannot mount "${path}" with propagation: it is on "${info.mountpoint}", not ${what}`,
  );
}

// ---- devices and capabilities -----------------------------------------------------------------------

/** customopts.WithDevices: each requested device (symlinks resolved) with its cgroup rule. */
function withCriDevices(
  config: ContainerConfig,
  host: SpecHost,
  ownershipFromSecurityContext: boolean,
): SpecOpt {
  return async (s, ctx) => {
    const l = linux(s);
    l.resources ??= {};
    const before = l.devices?.length ?? 0;
    for (const d of config.devices) {
      let path: string;
      try {
        path = await host.resolveSymlink(d.hostPath);
      } catch (err) {
        throw invalidArgument(`Cannot use device "${d.hostPath}": ${(err as Error).message}`, { cause: err });
      }
      await withDevices(await host.devices(path, d.containerPath), d.permissions)(s, ctx);
    }
    if (ownershipFromSecurityContext) {
      const sc = config.linux?.securityContext;
      const uid = Number(BigInt.asUintN(32, sc?.runAsUser?.value ?? 0n));
      const gid = Number(BigInt.asUintN(32, sc?.runAsGroup?.value ?? 0n));
      for (const dev of (l.devices ?? []).slice(before) as LinuxDevice[]) {
        if (uid !== 0) dev.uid = uid;
        if (gid !== 0) dev.gid = gid;
      }
    }
  };
}

type CapabilityList = "bounding" | "effective" | "permitted";
const CAP_LISTS: readonly CapabilityList[] = ["bounding", "effective", "permitted"];

/** oci.WithCapabilities: the same list in all three sets; none at all leaves them unset (Go's nil). */
function setCapabilities(s: Spec, caps: readonly string[] | undefined): void {
  const c = proc(s).capabilities ??= {};
  for (const k of CAP_LISTS) {
    if (caps && caps.length > 0) c[k] = [...caps];
    else delete c[k];
  }
}

/**
 * customopts.WithCapabilities: "ALL" (any case) in add or drop first sets every capability of the
 * runtime or none, so single names can still be added or dropped after it; names get the CAP_ prefix.
 */
function withCapabilities(
  sc: LinuxContainerSecurityContext | undefined,
  allCaps: readonly string[],
): SpecOpt {
  const caps = sc?.capabilities;
  if (!caps) return () => {};
  const isAll = (c: string) => c.toUpperCase() === "ALL";
  return (s) => {
    if (caps.addCapabilities.some(isAll)) setCapabilities(s, allCaps);
    if (caps.dropCapabilities.some(isAll)) setCapabilities(s, undefined);
    const c = proc(s).capabilities ??= {};
    for (const name of caps.addCapabilities.filter((n) => !isAll(n))) {
      const cap = `CAP_${name.toUpperCase()}`;
      for (const k of CAP_LISTS) {
        const list = c[k] ??= [];
        if (!list.includes(cap)) list.push(cap);
      }
    }
    for (const name of caps.dropCapabilities.filter((n) => !isAll(n))) {
      const cap = `CAP_${name.toUpperCase()}`;
      for (const k of CAP_LISTS) {
        const kept = (c[k] ?? []).filter((x) => x !== cap);
        if (kept.length > 0) c[k] = kept;
        else delete c[k];
      }
    }
  };
}

/** oci.WithPrivileged: the runtime's capabilities, no masked or read-only paths, writable sysfs and cgroupfs, no LSM or seccomp. */
function withPrivileged(allCaps: readonly string[]): SpecOpt {
  return (s) => {
    setCapabilities(s, allCaps);
    const l = linux(s);
    delete l.maskedPaths;
    delete l.readonlyPaths;
    for (const m of s.mounts ?? []) {
      if (m.type === "sysfs" || m.type === "cgroup") {
        m.options = m.options?.map((o) => (o === "ro" ? "rw" : o));
      }
    }
    const p = proc(s);
    delete p.selinuxLabel;
    delete p.apparmorProfile;
    delete l.seccomp;
  };
}

// ---- resources and namespaces -----------------------------------------------------------------------

const u64 = (v: bigint) => Number(BigInt.asUintN(64, v));

/**
 * customopts.WithResources: CPU period, quota, shares and cpuset, the memory limit (and swap as large,
 * so the container does not swap, when the swap controller is there), hugepage limits (unless the
 * hugetlb controller is disabled, as it is by default) and cgroup v2's unified keys.
 */
function withResources(
  r: LinuxContainerResources | undefined,
  settings: ContainerSpecSettings,
  host: SpecHost,
): SpecOpt {
  return (s) => {
    if (!r) return;
    const res = linux(s).resources ??= {};
    const cpu = res.cpu ??= {};
    const memory = res.memory ??= {};
    if (r.cpuPeriod !== 0n) cpu.period = u64(r.cpuPeriod);
    if (r.cpuQuota !== 0n) cpu.quota = Number(r.cpuQuota);
    if (r.cpuShares !== 0n) cpu.shares = u64(r.cpuShares);
    if (r.cpusetCpus) cpu.cpus = r.cpusetCpus;
    if (r.cpusetMems) cpu.mems = r.cpusetMems;
    if (r.memoryLimitInBytes !== 0n) {
      memory.limit = Number(r.memoryLimitInBytes);
      if (r.memorySwapLimitInBytes === 0n && host.swapControllerAvailable()) memory.swap = memory.limit;
    }
    if (r.memorySwapLimitInBytes !== 0n) memory.swap = Number(r.memorySwapLimitInBytes);
    if (!(settings.disableHugetlbController ?? true)) {
      if (host.hugetlbControllerPresent()) {
        const limits = (res.hugepageLimits ??= []) as { pageSize: string; limit: number }[];
        for (const h of r.hugepageLimits) limits.push({ pageSize: h.pageSize, limit: u64(h.limit) });
      } else if (!(settings.tolerateMissingHugetlbController ?? true)) {
        // containerd refuses even without hugepage limits in the request.
        throw failedPrecondition(
          "Cannot apply hugepage limits: the hugetlb cgroup controller is missing " +
            "(set tolerate_missing_hugetlb_controller to ignore it)",
        );
      }
    }
    if (Object.keys(r.unified).length > 0) {
      res.unified = { ...(res.unified as Record<string, string> | undefined), ...r.unified };
    }
  };
}

/**
 * containerd's updateOCIResource: a copy of `spec` with the request's resources applied as at creation
 * (for UpdateContainerResources).
 */
export async function withUpdatedResources(
  spec: Spec,
  r: LinuxContainerResources | undefined,
  settings: ContainerSpecSettings = {},
  host: SpecHost = hostSpecFacts(),
): Promise<Spec> {
  const cloned: Spec = structuredClone(spec);
  cloned.linux ??= {};
  await withResources(r, settings, host)(cloned, { namespace: "k8s.io", id: "" });
  return cloned;
}

/** customopts.WithOOMScoreAdj: only with resources in the request, then even when 0. */
function withOomScoreAdj(r: LinuxContainerResources | undefined, restrict: boolean, host: SpecHost): SpecOpt {
  return (s) => {
    if (!r) return;
    const adj = Number(r.oomScoreAdj);
    proc(s).oomScoreAdj = restrict ? restrictOomScoreAdj(adj, host.oomScoreAdj()) : adj;
  };
}

/**
 * customopts.WithPodNamespaces: the sandbox's network, IPC and UTS namespaces by /proc path, and its PID
 * namespace (or the target container's) unless the container has its own. A pod on the host's PID
 * namespace makes /proc/<sandbox>/ns/pid the host's.
 */
function withPodNamespaces(pidMode: NamespaceMode, sandboxPid: number, targetPid: number): SpecOpt {
  return async (s, ctx) => {
    for (const type of ["network", "ipc", "uts"]) {
      await withLinuxNamespace({ type, path: `/proc/${sandboxPid}/ns/${type === "network" ? "net" : type}` })(
        s,
        ctx,
      );
    }
    if (pidMode !== NamespaceMode.CONTAINER) {
      await withLinuxNamespace({ type: "pid", path: `/proc/${targetPid}/ns/pid` })(s, ctx);
    }
  };
}

// ---- security profiles ------------------------------------------------------------------------------

/**
 * generateApparmorSpecOpts: runtime/default (also when nothing is asked) is containerd's
 * cri-containerd.apparmor.d, except for privileged containers; a localhost profile must be loaded.
 * Loading the default profile into the kernel is the caller's part (contrib/apparmor's template).
 */
function apparmorSpecOpt(
  sp: Profile | undefined,
  { privileged, enabled, host }: { privileged: boolean; enabled: boolean; host: SpecHost },
): SpecOpt | undefined {
  if (!enabled) {
    if (sp && sp.profileType !== ProfileType.Unconfined) {
      throw failedPrecondition("Cannot apply an apparmor profile: apparmor is not supported on this host");
    }
    return undefined;
  }
  const p = sp ?? parseProfilePath("");
  if (p.profileType !== ProfileType.Localhost && p.localhostRef !== "") {
    throw invalidArgument(
      "Invalid apparmor profile: a localhost reference is set on a profile that is not Localhost",
    );
  }
  switch (p.profileType) {
    case ProfileType.Unconfined:
      return undefined;
    case ProfileType.RuntimeDefault:
      if (privileged) return undefined;
      return (s) => void (proc(s).apparmorProfile = APPARMOR_DEFAULT_PROFILE);
    case ProfileType.Localhost: {
      const name = trimLocalhost(p.localhostRef);
      return async (s) => {
        if (name === "") throw invalidArgument("Invalid apparmor profile: the localhost profile has no name");
        if (!await host.appArmorProfileExists(name)) throw notFound(`Cannot find apparmor profile "${name}"`);
        proc(s).apparmorProfile = name;
      };
    }
    default:
      throw invalidArgument(`Invalid apparmor profile type ${p.profileType}`);
  }
}
