/**
 * `berth run` (the Docker form) without commander, as ctr_run_fast.ts does for `ctr run`: the plain forms
 * of the global and run flags, combined short booleans (`-it`, `-dit`) included; undefined for anything
 * else, which cliMain then hands to commander. docker_run_fast_test.ts holds the two parses equal.
 */
import { globalDefaults } from "./context.ts";
import type { GlobalOptions } from "./globals.ts";
import { defaultSnapshotter } from "./globals.ts";
import { GLOBAL_FLAGS } from "./ctr_run_fast.ts";
import type { DockerRunFlags } from "./commands/docker_run.ts";
import { type FastFlag as Flag, fastFlag as flag, readFlags } from "../base/fast_flags.ts";

/** `berth run`'s flags (commands/docker_run.ts), by every spelling. */
const DOCKER_RUN_FLAGS: ReadonlyMap<string, Flag> = new Map([
  ["-d", flag("detach", "boolean")],
  ["--detach", flag("detach", "boolean")],
  ["--rm", flag("rm", "boolean")],
  ["-i", flag("interactive", "boolean")],
  ["--interactive", flag("interactive", "boolean")],
  ["-t", flag("tty", "boolean")],
  ["--tty", flag("tty", "boolean")],
  ["--name", flag("name", "value")],
  ["-p", flag("publish", "list")],
  ["--publish", flag("publish", "list")],
  ["-e", flag("env", "list")],
  ["--env", flag("env", "list")],
  ["--env-file", flag("envFile", "list")],
  ["-v", flag("volume", "list")],
  ["--volume", flag("volume", "list")],
  ["-w", flag("workdir", "value")],
  ["--workdir", flag("workdir", "value")],
  ["-u", flag("user", "value")],
  ["--user", flag("user", "value")],
  ["--entrypoint", flag("entrypoint", "value")],
  ["--restart", flag("restart", "value")],
  ["-m", flag("memory", "value")],
  ["--memory", flag("memory", "value")],
  ["--cpus", flag("cpus", "value")],
  ["--pids-limit", flag("pidsLimit", "value")],
  ["-h", flag("hostname", "value")],
  ["--hostname", flag("hostname", "value")],
  ["-l", flag("label", "list")],
  ["--label", flag("label", "list")],
  ["--network", flag("net", "list")],
  ["--net", flag("net", "list")],
  ["--dns", flag("dns", "list")],
  ["--read-only", flag("readOnly", "boolean")],
  ["--log-opt", flag("logOpt", "list")],
  ["--snapshotter", flag("snapshotter", "value")],
  ["--runtime", flag("runtime", "value")],
  ["--plain-http", flag("plainHttp", "boolean")],
  ["--key", flag("key", "list")],
]);

export interface DockerRunArgs {
  readonly image: string;
  readonly command: string[];
  readonly flags: DockerRunFlags;
  readonly globals: GlobalOptions;
}

/** `args` (Docker mode) as `run` with plain flags, or undefined for commander to parse. */
export function parseDockerRun(args: readonly string[]): DockerRunArgs | undefined {
  const globals: Record<string, unknown> = { ...globalDefaults() };
  let at = readFlags(args, 0, GLOBAL_FLAGS, globals);
  if (at === undefined || args[at] !== "run") return undefined;
  const flags: Record<string, unknown> = {
    restart: "no",
    snapshotter: defaultSnapshotter(),
    runtime: "io.containerd.runc.v2",
  };
  at = readFlags(args, at + 1, DOCKER_RUN_FLAGS, flags, { clusters: true });
  // Commander's passThroughOptions: from the image on, every argument is the container's.
  if (at === undefined || at >= args.length) return undefined;
  const [image, ...command] = args.slice(at) as [string, ...string[]];
  return {
    image,
    command,
    flags: flags as unknown as DockerRunFlags,
    globals: globals as unknown as GlobalOptions,
  };
}
