import assert from "node:assert/strict";
import { DEFAULT_CAPABILITIES } from "./spec.ts";
import {
  defaultSeccompProfile,
  parseKernelRelease,
  parseSeccompProfile,
  type SeccompSyscall,
} from "./seccomp.ts";

const X86 = { arch: "x86_64", kernelRelease: "6.1.0-13-amd64" };
const allowed = (syscalls: readonly SeccompSyscall[] | undefined, name: string) =>
  (syscalls ?? []).filter((s) => s.names.includes(name));

Deno.test("defaultSeccompProfile() denies by default and lists the x86 architectures", () => {
  const p = defaultSeccompProfile(DEFAULT_CAPABILITIES, X86);
  assert.equal(p.defaultAction, "SCMP_ACT_ERRNO");
  assert.deepEqual(p.architectures, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
  assert.equal(allowed(p.syscalls, "read")[0]?.action, "SCMP_ACT_ALLOW");
  assert.equal(allowed(p.syscalls, "arch_prctl").length, 1);
});

Deno.test("defaultSeccompProfile() keeps clone from making namespaces without CAP_SYS_ADMIN", () => {
  const p = defaultSeccompProfile(DEFAULT_CAPABILITIES, X86);
  assert.deepEqual(allowed(p.syscalls, "clone"), [{
    names: ["clone"],
    action: "SCMP_ACT_ALLOW",
    args: [{ index: 0, value: 0x7e020000, op: "SCMP_CMP_MASKED_EQ" }],
  }]);
  // ENOSYS, so that a libc falls back to clone, which the rule above inspects.
  assert.deepEqual(allowed(p.syscalls, "clone3"), [{
    names: ["clone3"],
    action: "SCMP_ACT_ERRNO",
    errnoRet: 38,
  }]);
  assert.equal(allowed(p.syscalls, "mount").length, 0);
});

Deno.test("defaultSeccompProfile() allows what each bounding capability grants, in the set's order", () => {
  const p = defaultSeccompProfile([...DEFAULT_CAPABILITIES, "CAP_SYS_TIME", "CAP_SYS_ADMIN"], X86);
  const tail = (p.syscalls ?? []).slice(-3).map((s) => s.names[0]);
  // CAP_SYS_CHROOT is among the defaults; then the two added, in their order; no clone restriction.
  assert.deepEqual(tail, ["chroot", "settimeofday", "bpf"]);
  assert.equal(allowed(p.syscalls, "clone3").length, 1);
  assert.equal(allowed(p.syscalls, "clone3")[0]!.action, "SCMP_ACT_ALLOW");
});

Deno.test("defaultSeccompProfile() allows ptrace alone only from kernel 4.8", () => {
  const ptraceOnly = (release: string) =>
    allowed(defaultSeccompProfile([], { arch: "x86_64", kernelRelease: release }).syscalls, "ptrace").length;
  assert.equal(ptraceOnly("4.8.0"), 1);
  assert.equal(ptraceOnly("4.4.0-210-generic"), 0);
  // containerd leaves the rule out when the release cannot be read.
  assert.equal(ptraceOnly("unknown"), 0);
});

Deno.test("defaultSeccompProfile() lists arm's architectures and syscalls on aarch64", () => {
  const p = defaultSeccompProfile([], { arch: "aarch64", kernelRelease: "6.1" });
  assert.deepEqual(p.architectures, ["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"]);
  assert.equal(allowed(p.syscalls, "set_tls").length, 1);
  assert.equal(allowed(p.syscalls, "arch_prctl").length, 0);
});

Deno.test("defaultSeccompProfile() gives each spec a profile of its own", () => {
  const a = defaultSeccompProfile([], X86);
  a.syscalls![0]!.names.push("changed");
  assert.ok(!defaultSeccompProfile([], X86).syscalls![0]!.names.includes("changed"));
});

Deno.test("parseKernelRelease() reads kernel and major as containerd's %d.%d", () => {
  assert.deepEqual(parseKernelRelease("3.12.25-gentoo"), [3, 12]);
  assert.deepEqual(parseKernelRelease("3.12-1-amd64"), [3, 12]);
  assert.equal(parseKernelRelease("v6"), undefined);
});

Deno.test("parseSeccompProfile() keeps runtime-spec's fields and drops what Go's omitempty drops", () => {
  const p = parseSeccompProfile(
    JSON.stringify({
      defaultAction: "SCMP_ACT_ERRNO",
      flags: [],
      comment: "unknown fields are ignored",
      syscalls: [
        { names: ["read"], action: "SCMP_ACT_ALLOW", args: [] },
        {
          names: ["personality"],
          action: "SCMP_ACT_ALLOW",
          args: [{ index: 0, value: 8, valueTwo: 0, op: "SCMP_CMP_EQ" }],
        },
      ],
    }),
    "p.json",
  );
  assert.deepEqual(p, {
    defaultAction: "SCMP_ACT_ERRNO",
    syscalls: [
      { names: ["read"], action: "SCMP_ACT_ALLOW" },
      { names: ["personality"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 8, op: "SCMP_CMP_EQ" }] },
    ],
  });
});

Deno.test("parseSeccompProfile() names the file when it is not a profile", () => {
  assert.throws(
    () => parseSeccompProfile("{", "/etc/p.json"),
    /Cannot decode seccomp profile "\/etc\/p.json"/,
  );
  assert.throws(() => parseSeccompProfile('{"syscalls": 3}', "p.json"), /syscalls is not a list/);
});
