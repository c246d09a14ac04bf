/**
 * `images pull` without commander, as ctr_run_fast.ts does for `ctr run`: a pull from the CLI measured
 * ~30 ms of its ~220 ms loading commander and the node-compat it brings. This reads the plain forms of
 * the global and pull flags and answers undefined for anything else (help, an unknown flag, a flag after
 * the reference, a missing or extra argument), which cliMain then hands to commander.
 * images_pull_fast_test.ts holds the two parses equal.
 */
import { clientDefaults, type ClientOptions } from "./global_flags.ts";
import { GLOBAL_FLAGS } from "./ctr_run_fast.ts";
import type { PullFlags } from "./commands/pull.ts";
import { type FastFlag as Flag, fastFlag as flag, readFlags } from "../base/fast_flags.ts";

/** `images pull`'s flags (commands/pull.ts pullOptions, commands/images.ts), by every spelling. */
const PULL_FLAGS: ReadonlyMap<string, Flag> = new Map([
  ["--plain-http", flag("plainHttp", "boolean")],
  ["-u", flag("user", "value")],
  ["--user", flag("user", "value")],
  ["--hosts-dir", flag("hostsDir", "value")],
  ["-k", flag("skipVerify", "boolean")],
  ["--skip-verify", flag("skipVerify", "boolean")],
  ["--platform", flag("platform", "list")],
  ["--all-platforms", flag("allPlatforms", "boolean")],
  ["--snapshotter", flag("snapshotter", "value")],
  ["--max-concurrent-downloads", flag("maxConcurrentDownloads", "value")],
  ["--label", flag("label", "list")],
  ["--key", flag("key", "list")],
  ["--skip-unpack", flag("skipUnpack", "boolean")],
]);

/** The names of the `images` verb (commands/images.ts). */
const IMAGES = new Set(["images", "image", "i"]);

export interface ImagesPull {
  readonly ref: string;
  readonly flags: PullFlags & { skipUnpack?: boolean };
  readonly globals: ClientOptions;
}

/** `args` (either mode, `ctr` taken out) as `images pull` with plain flags, or undefined for commander. */
export function parseImagesPull(args: readonly string[]): ImagesPull | undefined {
  const globals: Record<string, unknown> = { ...clientDefaults() };
  let at = readFlags(args, 0, GLOBAL_FLAGS, globals);
  if (at === undefined || !IMAGES.has(args[at]!) || args[at + 1] !== "pull") return undefined;
  const flags: Record<string, unknown> = {};
  at = readFlags(args, at + 2, PULL_FLAGS, flags);
  if (at === undefined || args.length - at !== 1) return undefined;
  const { address, namespace, timeout } = globals as unknown as ClientOptions;
  return { ref: args[at]!, flags: flags as PullFlags, globals: { address, namespace, timeout } };
}
