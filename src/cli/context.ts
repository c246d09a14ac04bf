import type { Command } from "commander";
import { parseGoDuration } from "../base/duration.ts";
import { BerthClient, defaultAddress, defaultNamespace } from "../client/mod.ts";
import {
  DEFAULT_CNI_NETCONFPATH,
  DEFAULT_CNI_PATH,
  DEFAULT_DATA_ROOT,
  type DockerPaths,
  dockerPaths as pathsOf,
} from "../docker/paths.ts";

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

export function globalDefaults(): Omit<GlobalOptions, "timeout" | "connectTimeout" | "debug"> {
  const env = (k: string) => Deno.env.get(k) || undefined;
  return {
    address: env("BERTH_ADDRESS") ?? env("CONTAINERD_ADDRESS") ?? defaultAddress,
    namespace: env("BERTH_NAMESPACE") ?? env("CONTAINERD_NAMESPACE") ?? defaultNamespace,
    dataRoot: env("BERTH_DATA_ROOT") ?? DEFAULT_DATA_ROOT,
    cniPath: env("BERTH_CNI_PATH") ?? env("CNI_PATH") ?? DEFAULT_CNI_PATH,
    cniNetconfpath: env("BERTH_CNI_NETCONFPATH") ?? env("NETCONFPATH") ?? DEFAULT_CNI_NETCONFPATH,
  };
}

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

/** The namespace the global flags name. */
export function namespaceOf(cmd: Command): string {
  let root = cmd;
  while (root.parent) root = root.parent;
  return root.opts<{ namespace: string }>().namespace;
}

/** The client for a command, from the global flags on the root program. */
export function clientFor(cmd: Command): BerthClient {
  let root = cmd;
  while (root.parent) root = root.parent;
  const g = root.opts<GlobalOptions>();
  return new BerthClient(g.address, {
    namespace: g.namespace,
    timeoutMs: g.timeout ? parseDuration(g.timeout) : 0,
  });
}

/** Runs `fn` with a client that is closed afterwards, whatever happens. */
export async function withClient<T>(cmd: Command, fn: (client: BerthClient) => Promise<T>): Promise<T> {
  const client = clientFor(cmd);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** Where the Docker-style verbs keep their files, from the global flags. */
export function dockerPaths(cmd: Command): DockerPaths {
  let root = cmd;
  while (root.parent) root = root.parent;
  const g = root.opts<GlobalOptions>();
  return pathsOf({
    address: g.address,
    namespace: g.namespace,
    dataRoot: g.dataRoot,
    cniPath: g.cniPath,
    cniConfDir: g.cniNetconfpath,
  });
}
