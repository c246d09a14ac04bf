/**
 * `ctr run` without commander. Commander is CommonJS over node:events, node:process and node:child_process,
 * and loading node-compat for them costs every `ctr run` ~30 ms of CPU before it sends a byte; this reads
 * the plain forms of the global and run flags itself and answers undefined for anything else (help,
 * `--version`, a flag it does not know, `-dt`, `--rm=x`, `--`, a missing argument), which cliMain then
 * hands to commander as before. ctr_run_fast_test.ts holds the two parses equal.
 */
import { clientDefaults, type ClientOptions, defaultSnapshotter } from "./global_flags.ts";
import type { RunFlags } from "./commands/run.ts";
import { type FastFlag as Flag, fastFlag as flag, readFlags } from "../base/fast_flags.ts";

/** The global flags (cli/main.ts), by every spelling. */
export const GLOBAL_FLAGS: ReadonlyMap<string, Flag> = new Map([
  ["-a", flag("address", "value")],
  ["--address", flag("address", "value")],
  ["-n", flag("namespace", "value")],
  ["--namespace", flag("namespace", "value")],
  ["--timeout", flag("timeout", "value")],
  ["--connect-timeout", flag("connectTimeout", "value")],
  ["--debug", flag("debug", "boolean")],
  ["--data-root", flag("dataRoot", "value")],
  ["--cni-path", flag("cniPath", "value")],
  ["--cni-netconfpath", flag("cniNetconfpath", "value")],
]);

/** `ctr run`'s flags (commands/run.ts), by every spelling. */
const RUN_FLAGS: ReadonlyMap<string, Flag> = new Map([
  ["--env", flag("env", "list")],
  ["--env-file", flag("envFile", "value")],
  ["--mount", flag("mount", "list")],
  ["--label", flag("label", "list")],
  ["--annotation", flag("annotation", "list")],
  ["--memory-limit", flag("memoryLimit", "value")],
  ["--pids-limit", flag("pidsLimit", "value")],
  ["--snapshotter", flag("snapshotter", "value")],
  ["--runtime", flag("runtime", "value")],
  ["--net-host", flag("netHost", "boolean")],
  ["--hostname", flag("hostname", "value")],
  ["-u", flag("user", "value")],
  ["--user", flag("user", "value")],
  ["--cwd", flag("cwd", "value")],
  ["--read-only", flag("readOnly", "boolean")],
  ["-t", flag("tty", "boolean")],
  ["--tty", flag("tty", "boolean")],
  ["--cap-add", flag("capAdd", "list")],
  ["--cap-drop", flag("capDrop", "list")],
  ["--cgroup", flag("cgroup", "value")],
  ["--plain-http", flag("plainHttp", "boolean")],
  ["--registry-user", flag("registryUser", "value")],
  ["--hosts-dir", flag("hostsDir", "value")],
  ["-k", flag("skipVerify", "boolean")],
  ["--skip-verify", flag("skipVerify", "boolean")],
  ["--key", flag("key", "list")],
  ["--cpus", flag("cpus", "value")],
  ["--cpu-shares", flag("cpuShares", "value")],
  ["--rm", flag("rm", "boolean")],
  ["-d", flag("detach", "boolean")],
  ["--detach", flag("detach", "boolean")],
  ["--null-io", flag("nullIo", "boolean")],
  ["--fifo-dir", flag("fifoDir", "value")],
]);

export interface CtrRun {
  readonly ref: string;
  readonly id: string;
  readonly args: string[];
  readonly flags: RunFlags;
  readonly globals: ClientOptions;
}

/** `args` (ctr mode, `ctr` taken out) as `run` with plain flags, or undefined for commander to parse. */
export function parseCtrRun(args: readonly string[]): CtrRun | undefined {
  const globals: Record<string, unknown> = { ...clientDefaults() };
  let at = readFlags(args, 0, GLOBAL_FLAGS, globals);
  if (at === undefined || args[at] !== "run") return undefined;
  const flags: Record<string, unknown> = {
    snapshotter: defaultSnapshotter(),
    runtime: "io.containerd.runc.v2",
    cpuShares: "1024",
  };
  at = readFlags(args, at + 1, RUN_FLAGS, flags);
  // Commander's passThroughOptions: from the image on, every argument is the container's.
  if (at === undefined || args.length - at < 2) return undefined;
  const [ref, id, ...rest] = args.slice(at) as [string, string, ...string[]];
  const { address, namespace, timeout } = globals as unknown as ClientOptions;
  return {
    ref,
    id,
    args: rest,
    flags: flags as unknown as RunFlags,
    globals: { address, namespace, timeout },
  };
}
