/**
 * The global flags every verb shares and the client they name. No Docker paths here: their address
 * hash loads node:crypto, which (with node-compat) costs `ctr run` ~20 ms at start (context.ts has them).
 */
import type { Command } from "commander";
import { parseGoDuration } from "../base/duration.ts";
import { BerthClient, defaultAddress, defaultNamespace } from "../client/mod.ts";

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

/** The namespace the global flags name. */
export function namespaceOf(cmd: Command): string {
  return globalsOf(cmd).namespace;
}

/** The client the global flags name. */
export function clientOf(g: ClientOptions): BerthClient {
  return new BerthClient(g.address, {
    namespace: g.namespace,
    timeoutMs: g.timeout ? parseDuration(g.timeout) : 0,
  });
}

/** The client for a command, from the global flags on the root program. */
export function clientFor(cmd: Command): BerthClient {
  return clientOf(globalsOf(cmd));
}

/** Runs `fn` with a client that is closed afterwards, whatever happens. */
export async function withClient<T>(
  cmd: Command | ClientOptions,
  fn: (client: BerthClient) => Promise<T>,
): Promise<T> {
  const client = "opts" in cmd ? clientFor(cmd) : clientOf(cmd);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}
