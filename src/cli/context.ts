import type { Command } from "commander";
import {
  DEFAULT_CNI_NETCONFPATH,
  DEFAULT_CNI_PATH,
  DEFAULT_DATA_ROOT,
  type DockerPaths,
  dockerPaths as pathsOf,
} from "../docker/paths.ts";
import { clientDefaults, type GlobalOptions, globalsOf } from "./globals.ts";

export {
  clientFor,
  type GlobalOptions,
  globalsOf,
  namespaceOf,
  parseDuration,
  repeatable,
  withClient,
} from "./globals.ts";

export function globalDefaults(): Omit<GlobalOptions, "timeout" | "connectTimeout" | "debug"> {
  const env = (k: string) => Deno.env.get(k) || undefined;
  return {
    ...clientDefaults(),
    dataRoot: env("BERTH_DATA_ROOT") ?? DEFAULT_DATA_ROOT,
    cniPath: env("BERTH_CNI_PATH") ?? env("CNI_PATH") ?? DEFAULT_CNI_PATH,
    cniNetconfpath: env("BERTH_CNI_NETCONFPATH") ?? env("NETCONFPATH") ?? DEFAULT_CNI_NETCONFPATH,
  };
}

/** Where the Docker-style verbs keep their files, from the global flags. */
export function dockerPaths(cmd: Command): DockerPaths {
  return dockerPathsOf(globalsOf(cmd));
}

/** Where the Docker-style verbs keep their files, from global flags already read. */
export function dockerPathsOf(g: GlobalOptions): DockerPaths {
  return pathsOf({
    address: g.address,
    namespace: g.namespace,
    dataRoot: g.dataRoot,
    cniPath: g.cniPath,
    cniConfDir: g.cniNetconfpath,
  });
}
