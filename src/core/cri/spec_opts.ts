/**
 * What the sandbox and container specs share, as containerd 1.6 has it in pkg/cri/opts and the CRI
 * server's helpers: the CRI annotation names, the cgroup path of a pod member, annotation passthrough,
 * the OOM score floor, supplementary groups, and the choice of a seccomp profile.
 */
import { failedPrecondition, invalidArgument } from "../../base/errors.ts";
import type { SpecOpt } from "../../oci/opts.ts";
import { defaultSeccompProfile, parseSeccompProfile } from "../../oci/seccomp.ts";
import type { Linux, Process, Spec } from "../../oci/spec.ts";
import {
  type SecurityProfile,
  SecurityProfile_ProfileType as ProfileType,
} from "../../gen/k8s/cri/runtime/v1/api_pb.ts";
import type { SpecHost } from "./spec_host.ts";

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

/** The rootfs folder inside the bundle (containerd's relativeRootfsPath). */
export const RELATIVE_ROOTFS = "rootfs";

export function proc(s: Spec): Process {
  return s.process ??= { user: { uid: 0, gid: 0 }, cwd: "" };
}

export function linux(s: Spec): Linux {
  return s.linux ??= {};
}

/** Go's filepath.Clean. */
export function cleanPath(path: string): string {
  if (path === "") return ".";
  const abs = path.startsWith("/");
  const parts: string[] = [];
  for (const p of path.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (parts.length > 0 && parts.at(-1) !== "..") parts.pop();
      else if (!abs) parts.push("..");
    } else parts.push(p);
  }
  const out = (abs ? "/" : "") + parts.join("/");
  return out === "" ? "." : out;
}

/**
 * containerd's getCgroupsPath: `<parent>/<id>`, or systemd's `<slice>:cri-containerd:<id>` when the
 * parent's last element is a slice (for a.slice/b.slice, b.slice).
 */
export function cgroupsPath(parent: string, id: string): string {
  const base = cleanPath(parent).split("/").filter((p) => p !== "").at(-1) ?? "/";
  if (base.endsWith(".slice")) return `${base}:cri-containerd:${id}`;
  return cleanPath(`${parent}/${id}`);
}

/**
 * Go's path.Match as a RegExp: `*` and `?` do not match `/`; `[…]`, `[^…]` with ranges, `\\` escapes.
 * Undefined for a malformed pattern, which path.Match never matches.
 */
function globRegExp(pattern: string): RegExp | undefined {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "\\") {
      if (++i >= pattern.length) return undefined;
      re += escapeRe(pattern[i]!);
    } else if (c === "[") {
      const end = classEnd(pattern, i + 1);
      if (end < 0) return undefined;
      let body = pattern.slice(i + 1, end);
      const negated = body.startsWith("^");
      if (negated) body = body.slice(1);
      if (body === "" || body.startsWith("-") || body.endsWith("-")) return undefined;
      let cls = "";
      for (let j = 0; j < body.length; j++) {
        const ch = body[j] === "\\" ? body[++j] ?? "" : body[j]!;
        cls += body[j] === "-" && body[j - 1] !== "\\" ? "-" : escapeRe(ch);
      }
      re += `[${negated ? "^" : ""}${cls}]`;
      i = end;
    } else re += escapeRe(c);
  }
  try {
    return new RegExp(`^${re}$`, "s");
  } catch {
    return undefined;
  }
}

/** The index of the `]` closing a class that starts at `from`, or -1. */
function classEnd(pattern: string, from: number): number {
  for (let j = from; j < pattern.length; j++) {
    if (pattern[j] === "\\") j++;
    else if (pattern[j] === "]" && j > from) return j;
  }
  return -1;
}

const escapeRe = (c: string) => c.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");

/** The annotations `patterns` (path.Match globs) let through (containerd's getPassthroughAnnotations). */
export function passthroughAnnotations(
  annotations: Readonly<Record<string, string>>,
  patterns: readonly string[],
): Record<string, string> {
  const out: Record<string, string> = {};
  const res = patterns.map(globRegExp).filter((r): r is RegExp => r !== undefined);
  for (const [k, v] of Object.entries(annotations)) {
    if (res.some((r) => r.test(k))) out[k] = v;
  }
  return out;
}

/** An OOM score no lower than the runtime's own (restrict_oom_score_adj). */
export function restrictOomScoreAdj(adj: number, current = currentOomScoreAdj()): number {
  return adj < current ? current : adj;
}

function currentOomScoreAdj(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/self/oom_score_adj").trim()) || 0;
  } catch {
    return 0;
  }
}

/** No default seccomp, apparmor or rlimits (containerd's WithoutDefaultSecuritySettings, issue #515). */
export const withoutDefaultSecuritySettings: SpecOpt = (s) => {
  const p = proc(s);
  delete p.apparmorProfile;
  delete p.rlimits;
  if (s.linux) delete s.linux.seccomp;
};

/** containerd's mergeGids: the union, sorted; nothing (not an empty list) when both are empty. */
export function mergeGids(
  a: readonly number[] | undefined,
  b: readonly number[] | undefined,
): number[] | undefined {
  const all = [...new Set([...(a ?? []), ...(b ?? [])])].sort((x, y) => x - y);
  return all.length > 0 ? all : undefined;
}

/** customopts.WithSupplementalGroups: merged into the process's groups (int64 → uint32 as Go converts). */
export function withSupplementalGroups(groups: readonly bigint[]): SpecOpt {
  return (s) => {
    const u = proc(s).user;
    const merged = mergeGids(u.additionalGids, groups.map((g) => Number(BigInt.asUintN(32, g))));
    if (merged) u.additionalGids = merged;
    else delete u.additionalGids;
  };
}

/** checkSelinuxLevel: containerd validates the level's format even with SELinux off. */
export function checkSelinuxLevel(level: string): void {
  if (level === "") return;
  if (!/^s\d(-s\d)?(:c\d{1,4}(\.c\d{1,4})?(,c\d{1,4}(\.c\d{1,4})?)*)?$/.test(level)) {
    throw invalidArgument(`Invalid SELinux level "${level}": the format is not correct`);
  }
}

// ---- security profiles ------------------------------------------------------------------------------

export type Profile = Pick<SecurityProfile, "profileType" | "localhostRef">;

export const PROFILE_LOCALHOST = "localhost/";

/** containerd's generateSecurityProfile: a profile from its path form. */
export function parseProfilePath(path: string): Profile {
  switch (path) {
    case "runtime/default":
    case "docker/default":
    case "":
      return { profileType: ProfileType.RuntimeDefault, localhostRef: "" };
    case "unconfined":
      return { profileType: ProfileType.Unconfined, localhostRef: "" };
    default:
      if (!path.startsWith(PROFILE_LOCALHOST)) throw invalidArgument(`Invalid security profile "${path}"`);
      return { profileType: ProfileType.Localhost, localhostRef: path.slice(PROFILE_LOCALHOST.length) };
  }
}

/**
 * generateSeccompSecurityProfile: the request's profile, else its deprecated path, else the runtime's
 * `unset_seccomp_profile`; none when all are empty.
 */
export function seccompProfileOf(
  sc: { readonly seccomp?: Profile; readonly seccompProfilePath: string } | undefined,
  unset: string,
): Profile | undefined {
  if (sc?.seccomp) return sc.seccomp;
  if (sc?.seccompProfilePath) return parseProfilePath(sc.seccompProfilePath);
  if (unset !== "") return parseProfilePath(unset);
  return undefined;
}

export const trimLocalhost = (ref: string) =>
  ref.startsWith(PROFILE_LOCALHOST) ? ref.slice(PROFILE_LOCALHOST.length) : ref;

/**
 * generateSeccompSpecOpts: none for privileged, unconfined or when nothing is asked; runtime/default is
 * containerd's default profile for the capabilities the spec has by then; localhost/<path> a JSON file.
 */
export function seccompSpecOpt(
  sp: Profile | undefined,
  { privileged, host }: { readonly privileged: boolean; readonly host: SpecHost },
): SpecOpt | undefined {
  if (privileged) return undefined;
  if (!host.seccompEnabled()) {
    if (sp && sp.profileType !== ProfileType.Unconfined) {
      throw failedPrecondition("Cannot apply a seccomp profile: seccomp is not supported by this kernel");
    }
    return undefined;
  }
  if (!sp) return undefined;
  if (sp.profileType !== ProfileType.Localhost && sp.localhostRef !== "") {
    throw invalidArgument(
      "Invalid seccomp profile: a localhost reference is set on a profile that is not Localhost",
    );
  }
  switch (sp.profileType) {
    case ProfileType.Unconfined:
      return undefined;
    case ProfileType.RuntimeDefault:
      return (s) => {
        linux(s).seccomp = defaultSeccompProfile(s.process?.capabilities?.bounding ?? [], {
          arch: host.arch(),
          kernelRelease: host.kernelRelease(),
        });
      };
    case ProfileType.Localhost: {
      const path = trimLocalhost(sp.localhostRef);
      return async (s) => {
        let text: string;
        try {
          text = await host.readTextFile(path);
        } catch (err) {
          throw invalidArgument(`Cannot load seccomp profile "${path}": ${(err as Error).message}`, {
            cause: err,
          });
        }
        linux(s).seccomp = parseSeccompProfile(text, path);
      };
    }
    default:
      throw invalidArgument(`Invalid seccomp profile type ${sp.profileType}`);
  }
}
