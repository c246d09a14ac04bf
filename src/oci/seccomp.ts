/**
 * Seccomp profiles for a spec, as containerd's contrib/seccomp: the runtime/default profile (built from
 * seccomp_default.ts, generated from containerd's Go source, for the process's bounding capabilities,
 * the architecture and the kernel) and a profile read from a JSON file (CRI's localhost/<path>).
 */
import { invalidArgument } from "../base/errors.ts";
import type { SpecOpt } from "./opts.ts";
import type { Spec } from "./spec.ts";
import { SECCOMP_DEFAULTS } from "./seccomp_default.ts";

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface SeccompSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[];
}

/** runtime-spec's LinuxSeccomp, fields as Go's encoding/json writes them (omitempty). */
export interface Seccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: SeccompSyscall[];
}

/** A syscall rule of the generated data (read-only: it is copied into each profile). */
export interface SeccompRule {
  readonly names: readonly string[];
  readonly action: string;
  readonly errnoRet?: number;
  readonly args?: readonly Readonly<SeccompArg>[];
}

/** One block of containerd's DefaultProfile, in the order the Go code appends them. */
export type SeccompStep =
  | { readonly when: "always"; readonly syscalls: readonly SeccompRule[] }
  /** Added when the kernel is at least `atLeast` (kernel.major), and its version could be read. */
  | {
    readonly when: "kernel";
    readonly atLeast: readonly [number, number];
    readonly syscalls: readonly SeccompRule[];
  }
  /** Keyed by Deno.build.arch. */
  | { readonly when: "arch"; readonly byArch: Readonly<Record<string, readonly SeccompRule[]>> }
  /** Added for each bounding capability in the bounding set's order. */
  | { readonly when: "capability"; readonly byCapability: Readonly<Record<string, readonly SeccompRule[]>> }
  | {
    readonly when: "without-capability";
    readonly capability: string;
    readonly steps: readonly SeccompStep[];
  };

export interface SeccompDefaults {
  readonly defaultAction: string;
  /** Keyed by Deno.build.arch. */
  readonly architectures: Readonly<Record<string, readonly string[]>>;
  readonly steps: readonly SeccompStep[];
}

export interface DefaultSeccompOptions {
  /** Deno.build.arch by default. */
  readonly arch?: string;
  /** The kernel release (`uname -r`); Deno.osRelease() by default. */
  readonly kernelRelease?: string;
}

const DEFAULTS: SeccompDefaults = SECCOMP_DEFAULTS;

/** `%d.%d` of a kernel release, as containerd's kernelversion.parseRelease; undefined if it has none. */
export function parseKernelRelease(release: string): [number, number] | undefined {
  const m = /^\s*([+-]?\d+)\.\s*([+-]?\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/**
 * containerd's seccomp.DefaultProfile for a process with these bounding capabilities: the allow list,
 * ptrace on kernels from 4.8, the architecture's own syscalls, one addition per capability, and clone
 * restricted to no new namespaces (clone3 answering ENOSYS) without CAP_SYS_ADMIN.
 */
export function defaultSeccompProfile(
  bounding: readonly string[],
  options: DefaultSeccompOptions = {},
): Seccomp {
  const arch = options.arch ?? Deno.build.arch;
  const kernel = parseKernelRelease(options.kernelRelease ?? Deno.osRelease());
  const syscalls: SeccompRule[] = [];
  const apply = (steps: readonly SeccompStep[]) => {
    for (const step of steps) {
      switch (step.when) {
        case "always":
          syscalls.push(...step.syscalls);
          break;
        case "kernel": {
          const [k, m] = step.atLeast;
          if (kernel && (kernel[0] > k || (kernel[0] === k && kernel[1] >= m))) {
            syscalls.push(...step.syscalls);
          }
          break;
        }
        case "arch":
          syscalls.push(...(step.byArch[arch] ?? []));
          break;
        case "capability":
          for (const cap of bounding) syscalls.push(...(step.byCapability[cap] ?? []));
          break;
        case "without-capability":
          if (!bounding.includes(step.capability)) apply(step.steps);
          break;
      }
    }
  };
  apply(DEFAULTS.steps);
  const architectures = DEFAULTS.architectures[arch] ?? [];
  // A deep copy: the rules are shared, the profile belongs to one spec.
  return structuredClone({
    defaultAction: DEFAULTS.defaultAction,
    ...(architectures.length > 0 ? { architectures: [...architectures] } : {}),
    syscalls,
  }) as Seccomp;
}

/**
 * containerd's seccomp.WithDefaultProfile: the default profile for the spec's bounding capabilities, so
 * it must follow every option that changes them.
 */
export function withDefaultSeccomp(options: DefaultSeccompOptions = {}): SpecOpt {
  return (s: Spec) => {
    const linux = s.linux ??= {};
    linux.seccomp = defaultSeccompProfile(s.process?.capabilities?.bounding ?? [], options);
  };
}

/**
 * A profile as Go's json.Unmarshal into runtime-spec's LinuxSeccomp reads it: known fields only, zero
 * values and empty lists dropped as omitempty drops them when the spec is written.
 */
export function parseSeccompProfile(text: string, path: string): Seccomp {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`Cannot decode seccomp profile "${path}": ${(err as Error).message}`);
  }
  const obj = (v: unknown, what: string): Record<string, unknown> => {
    if (v === null || v === undefined) return {};
    if (typeof v !== "object" || Array.isArray(v)) {
      throw invalidArgument(`Cannot decode seccomp profile "${path}": ${what} is not an object`);
    }
    return v as Record<string, unknown>;
  };
  const list = (v: unknown, what: string): unknown[] => {
    if (v === null || v === undefined) return [];
    if (!Array.isArray(v)) {
      throw invalidArgument(`Cannot decode seccomp profile "${path}": ${what} is not a list`);
    }
    return v;
  };
  const str = (v: unknown, what: string): string => {
    if (v === null || v === undefined) return "";
    if (typeof v !== "string") {
      throw invalidArgument(`Cannot decode seccomp profile "${path}": ${what} is not a string`);
    }
    return v;
  };
  const num = (v: unknown, what: string): number | undefined => {
    if (v === null || v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw invalidArgument(`Cannot decode seccomp profile "${path}": ${what} is not a whole number`);
    }
    return v;
  };
  const top = obj(raw, "the profile");
  const out: Seccomp = { defaultAction: str(top.defaultAction, "defaultAction") };
  const errno = num(top.defaultErrnoRet, "defaultErrnoRet");
  if (errno !== undefined) out.defaultErrnoRet = errno;
  const arches = list(top.architectures, "architectures").map((a) => str(a, "an architecture"));
  if (arches.length > 0) out.architectures = arches;
  const flags = list(top.flags, "flags").map((f) => str(f, "a flag"));
  if (flags.length > 0) out.flags = flags;
  if (str(top.listenerPath, "listenerPath")) out.listenerPath = str(top.listenerPath, "listenerPath");
  if (str(top.listenerMetadata, "listenerMetadata")) {
    out.listenerMetadata = str(top.listenerMetadata, "listenerMetadata");
  }
  const syscalls = list(top.syscalls, "syscalls").map((v, i): SeccompSyscall => {
    const o = obj(v, `syscalls[${i}]`);
    const sc: SeccompSyscall = {
      names: list(o.names, `syscalls[${i}].names`).map((n) => str(n, "a syscall name")),
      action: str(o.action, `syscalls[${i}].action`),
    };
    const ret = num(o.errnoRet, `syscalls[${i}].errnoRet`);
    if (ret !== undefined) sc.errnoRet = ret;
    const args = list(o.args, `syscalls[${i}].args`).map((a, j): SeccompArg => {
      const ao = obj(a, `syscalls[${i}].args[${j}]`);
      const arg: SeccompArg = {
        index: num(ao.index, "index") ?? 0,
        value: num(ao.value, "value") ?? 0,
        op: str(ao.op, "op"),
      };
      const two = num(ao.valueTwo, "valueTwo");
      if (two) arg.valueTwo = two;
      return arg;
    });
    if (args.length > 0) sc.args = args;
    return sc;
  });
  if (syscalls.length > 0) out.syscalls = syscalls;
  return out;
}

/** containerd's seccomp.WithProfile: the profile in a JSON file on the host. */
export function withSeccompProfile(path: string): SpecOpt {
  return async (s: Spec) => {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      throw invalidArgument(`Cannot load seccomp profile "${path}": ${(err as Error).message}`);
    }
    (s.linux ??= {}).seccomp = parseSeccompProfile(text, path);
  };
}
