/**
 * What the CRI's spec builders learn from the host, behind one interface so tests can pass the facts of
 * the host that made the golden specs (and so that a spec can be computed without touching files).
 * `hostSpecFacts()` is the real one; each probe follows the containerd 1.6 check it replaces.
 */
import { lookupMount, type MountInfo, parseMountInfo, selfMountInfo } from "../mount/mod.ts";
import { devicesFromPath, hostDevices, type LinuxDevice } from "../../oci/devices.ts";

export interface SpecHost {
  /** os.Hostname(): HOSTNAME of containers whose pod sets none. */
  hostname(): string;
  /** The runtime's effective capabilities (cap.Current()): what privileged and "ALL" grant. */
  capabilities(): readonly string[];
  /** The kernel release (`uname -r`), for the default seccomp profile's kernel-dependent rules. */
  kernelRelease(): string;
  /** Deno.build.arch naming: the default seccomp profile's architectures. */
  arch(): string;
  /** pkg/seccomp.IsEnabled(): the kernel filters syscalls. */
  seccompEnabled(): boolean;
  /** pkg/apparmor.HostSupports(): apparmor is enabled and apparmor_parser is installed. */
  apparmorEnabled(): boolean;
  /** Whether a profile of that name is loaded (/sys/kernel/security/apparmor/profiles). */
  appArmorProfileExists(name: string): Promise<boolean>;
  /** cgroups.Mode() == Unified: containers get a cgroup namespace. */
  cgroupUnified(): boolean;
  /** opts.SwapControllerAvailable(): a memory limit also limits swap. */
  swapControllerAvailable(): boolean;
  /** The hugetlb cgroup controller is there. */
  hugetlbControllerPresent(): boolean;
  /** The runtime's own /proc/self/oom_score_adj (restrict_oom_score_adj's floor). */
  oomScoreAdj(): number;
  /** Stat, and create as a 0755 folder when missing (a CRI mount's host path). */
  ensurePath(path: string): Promise<void>;
  exists(path: string): Promise<boolean>;
  /** pkg/os ResolveSymbolicLink: the real path when `path` itself is a symlink, else `path`. */
  resolveSymlink(path: string): Promise<string>;
  /** mount.Lookup: the mount `path` is on. */
  lookupMount(path: string): Promise<MountInfo>;
  /** oci getDevices: the device node at `path`, or every node under the folder. */
  devices(path: string, containerPath: string): Promise<LinuxDevice[]>;
  /** oci.HostDevices: every device node under /dev. */
  hostDevices(): Promise<LinuxDevice[]>;
  readTextFile(path: string): Promise<string>;
}

/** containerd's cap.Known() order: bit N of a capability mask is CAPS[N]. */
export const CAPABILITY_NAMES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
];

/** cap.FromBitmap: the names of the set bits of a capability mask (hex, as /proc/<pid>/status shows it). */
export function capabilitiesFromMask(hex: string): string[] {
  const mask = BigInt(`0x${hex}`);
  return CAPABILITY_NAMES.filter((_, i) => ((mask >> BigInt(i)) & 1n) === 1n);
}

function readSync(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

const existsSync = (path: string) => {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
};

function once<T>(f: () => T): () => T {
  let done = false;
  let value: T;
  return () => {
    if (!done) {
      value = f();
      done = true;
    }
    return value;
  };
}

const unified = once(() =>
  // cgroups.Mode(): cgroup2 mounted at /sys/fs/cgroup. The v1 hierarchy is a tmpfs of controller folders.
  parseMountInfo(readSync("/proc/self/mountinfo") ?? "").some((m) =>
    m.mountpoint === "/sys/fs/cgroup" && m.fsType === "cgroup2"
  )
);

let probed: SpecHost | undefined;

/** The facts of the host this process runs on, each probed once (they hold for the process's life). */
export function hostSpecFacts(): SpecHost {
  return probed ??= probeHost();
}

function probeHost(): SpecHost {
  const caps = once(() => {
    const status = readSync("/proc/self/status") ?? "";
    const eff = /^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1];
    return eff ? capabilitiesFromMask(eff) : [];
  });
  const seccomp = once(() => {
    // containerd asks prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL) for anything but EINVAL; the
    // same two kernel options show as the Seccomp line (CONFIG_SECCOMP) and the filter actions file
    // (CONFIG_SECCOMP_FILTER).
    return /^Seccomp:/m.test(readSync("/proc/self/status") ?? "") &&
      existsSync("/proc/sys/kernel/seccomp/actions_avail");
  });
  const apparmor = once(() =>
    existsSync("/sys/kernel/security/apparmor") && !Deno.env.get("container") &&
    existsSync("/sbin/apparmor_parser") &&
    (readSync("/sys/module/apparmor/parameters/enabled") ?? "").startsWith("Y")
  );
  const swap = once(() => {
    if (!unified()) return existsSync("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes");
    // memory.swap.max is not in the root cgroup: containerd looks in its own.
    const own = /^0::(.*)$/m.exec(readSync("/proc/self/cgroup") ?? "")?.[1];
    return own !== undefined && existsSync(`/sys/fs/cgroup${own.replace(/\/$/, "")}/memory.swap.max`);
  });
  const hugetlb = once(() =>
    unified()
      ? (readSync("/sys/fs/cgroup/cgroup.controllers") ?? "").includes("hugetlb")
      : existsSync("/sys/fs/cgroup/hugetlb")
  );
  return {
    hostname: () => Deno.hostname(),
    capabilities: caps,
    kernelRelease: () => Deno.osRelease(),
    arch: () => Deno.build.arch,
    seccompEnabled: seccomp,
    apparmorEnabled: apparmor,
    appArmorProfileExists: async (name) => {
      const text = await Deno.readTextFile("/sys/kernel/security/apparmor/profiles");
      return text.split("\n").some((l) => l.startsWith(`${name} (`));
    },
    cgroupUnified: unified,
    swapControllerAvailable: swap,
    hugetlbControllerPresent: hugetlb,
    oomScoreAdj: () => Number((readSync("/proc/self/oom_score_adj") ?? "0").trim()) || 0,
    ensurePath: async (path) => {
      try {
        await Deno.stat(path);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
        await Deno.mkdir(path, { recursive: true, mode: 0o755 });
      }
    },
    exists: async (path) => {
      try {
        await Deno.stat(path);
        return true;
      } catch {
        return false;
      }
    },
    resolveSymlink: async (path) => (await Deno.lstat(path)).isSymlink ? await Deno.realPath(path) : path,
    lookupMount: async (path) => lookupMount(path, await selfMountInfo()),
    devices: (path, containerPath) => devicesFromPath(path, containerPath),
    hostDevices,
    readTextFile: (path) => Deno.readTextFile(path),
  };
}
