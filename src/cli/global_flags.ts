/**
 * The global flags every verb shares, their defaults, and ctr's duration syntax: no client here, so the
 * fast paths that parse flags themselves (ctr_run_fast.ts) load no service descriptors for them.
 */
import type { Command } from "commander";
import { parseGoDuration } from "../base/duration.ts";
import { defaultAddress, defaultNamespace } from "../client/defaults.ts";

export interface GlobalOptions {
  address: string;
  namespace: string;
  timeout?: string;
  connectTimeout?: string;
  debug?: boolean;
  dataRoot: string;
  cniPath: string;
  cniNetconfpath: string;
}

/** What a client needs of the global flags. */
export type ClientOptions = Pick<GlobalOptions, "address" | "namespace" | "timeout">;

/** The daemon's address and namespace when no flag names them: the environment's, then ctr's defaults. */
export function clientDefaults(): Pick<GlobalOptions, "address" | "namespace"> {
  const env = (k: string) => Deno.env.get(k) || undefined;
  return {
    address: env("BERTH_ADDRESS") ?? env("CONTAINERD_ADDRESS") ?? defaultAddress,
    namespace: env("BERTH_NAMESPACE") ?? env("CONTAINERD_NAMESPACE") ?? defaultNamespace,
  };
}

/** The snapshotter when no flag names one: the environment's, then overlayfs. */
export const defaultSnapshotter = (): string =>
  Deno.env.get("BERTH_SNAPSHOTTER") || Deno.env.get("CONTAINERD_SNAPSHOTTER") || "overlayfs";

/** ctr's duration syntax (`10s`, `500ms`, `1m30s`) in milliseconds; a bare number is seconds. */
export function parseDuration(value: string): number {
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  try {
    return parseGoDuration(value);
  } catch {
    throw new Error(`Invalid duration "${value}": use forms like 10s, 500ms or 1m30s`);
  }
}

/** The argument parser of a repeatable flag (`--label a --label b`): every value, in order. */
export const repeatable = (value: string, previous: string[] = []): string[] => [...previous, value];

/** The global flags on the root program of `cmd`. */
export function globalsOf(cmd: Command): GlobalOptions {
  let root = cmd;
  while (root.parent) root = root.parent;
  return root.opts<GlobalOptions>();
}
