/**
 * Where the Docker-style workflows keep their state on the host, as nerdctl lays it out: one data store
 * per daemon address (`<data-root>/<8 hex of the address's SHA-256>`), so two daemons on one host never
 * share names, hosts files or volumes; the CNI plugins and network configs where CNI keeps them.
 */
import {
  cniBinDirsOf,
  dataStoreOf,
  DEFAULT_CNI_NETCONFPATH,
  DEFAULT_CNI_PATH,
  DEFAULT_DATA_ROOT,
  type NetworkPaths,
} from "../core/dockernet/paths.ts";

export { DEFAULT_CNI_NETCONFPATH, DEFAULT_CNI_PATH, DEFAULT_DATA_ROOT };

/** NetworkPaths (the data store is everything below `<data-root>/<hash of address>`) and the daemon's socket. */
export interface DockerPaths extends NetworkPaths {
  /** The daemon's socket. */
  readonly address: string;
}

export interface DockerPathOptions {
  readonly address: string;
  readonly namespace: string;
  readonly dataRoot?: string;
  /** Colon-separated, as CNI_PATH. */
  readonly cniPath?: string;
  readonly cniConfDir?: string;
}

export function dockerPaths(options: DockerPathOptions): DockerPaths {
  return {
    address: options.address,
    namespace: options.namespace,
    dataStore: dataStoreOf(options.dataRoot, options.address),
    cniBinDirs: cniBinDirsOf(options.cniPath),
    cniConfDir: options.cniConfDir || DEFAULT_CNI_NETCONFPATH,
  };
}

/** The folder of one container's files (log, hostname, resolv.conf). */
export function containerDir(paths: DockerPaths, id: string, namespace = paths.namespace): string {
  return `${paths.dataStore}/containers/${namespace}/${id}`;
}
