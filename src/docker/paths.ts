/**
 * Where the Docker-style workflows keep their state on the host, as nerdctl lays it out: one data store
 * per daemon address (`<data-root>/<8 hex of the address's SHA-256>`), so two daemons on one host never
 * share names, hosts files or volumes; the CNI plugins and network configs where CNI keeps them.
 */
import { createHash } from "node:crypto";

export const DEFAULT_DATA_ROOT = "/var/lib/berth/docker";
export const DEFAULT_CNI_PATH = "/opt/cni/bin:/usr/lib/cni";
export const DEFAULT_CNI_NETCONFPATH = "/etc/cni/net.d";

export interface DockerPaths {
  /** The daemon's socket. */
  readonly address: string;
  readonly namespace: string;
  /** `<data-root>/<hash of address>`: everything below is this daemon's. */
  readonly dataStore: string;
  /** Folders searched in order for CNI plugin binaries. */
  readonly cniBinDirs: readonly string[];
  /** Where network configs (conflists) are read and written. */
  readonly cniConfDir: string;
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
  const root = (options.dataRoot || DEFAULT_DATA_ROOT).replace(/\/+$/, "");
  const hash = createHash("sha256").update(options.address).digest("hex").slice(0, 8);
  return {
    address: options.address,
    namespace: options.namespace,
    dataStore: `${root}/${hash}`,
    cniBinDirs: (options.cniPath || DEFAULT_CNI_PATH).split(":").filter((d) => d !== ""),
    cniConfDir: options.cniConfDir || DEFAULT_CNI_NETCONFPATH,
  };
}

/** The folder of one container's files (log, hostname, resolv.conf). */
export function containerDir(paths: DockerPaths, id: string, namespace = paths.namespace): string {
  return `${paths.dataStore}/containers/${namespace}/${id}`;
}
