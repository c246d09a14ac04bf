/**
 * Where Docker-style networking keeps its state, as nerdctl lays it out: one data store per daemon
 * address (`<data-root>/<8 hex of the address's SHA-256>`), the CNI plugins and network configs where
 * CNI keeps them.
 */
import { sha256HexSync } from "../../base/hash.ts";

export const DEFAULT_DATA_ROOT = "/var/lib/berth/docker";
export const DEFAULT_CNI_PATH = "/opt/cni/bin:/usr/lib/cni";
export const DEFAULT_CNI_NETCONFPATH = "/etc/cni/net.d";

/** What attaching a container to its networks needs to know of the host. */
export interface NetworkPaths {
  /** The containerd namespace, when the container's annotations name none. */
  readonly namespace: string;
  /** `<data-root>/<hash of address>`: hosts files and the CNI result cache live below. */
  readonly dataStore: string;
  /** Folders searched in order for CNI plugin binaries. */
  readonly cniBinDirs: readonly string[];
  /** Where network configs (conflists) are read and written. */
  readonly cniConfDir: string;
}

/** The data store of the daemon at `address` under `dataRoot` (nerdctl's per-address folder). */
export function dataStoreOf(dataRoot: string | undefined, address: string): string {
  const root = (dataRoot || DEFAULT_DATA_ROOT).replace(/\/+$/, "");
  return `${root}/${sha256HexSync(address).slice(0, 8)}`;
}

/** CNI_PATH-style folders (colon-separated), empty entries dropped. */
export function cniBinDirsOf(cniPath: string | undefined): string[] {
  return (cniPath || DEFAULT_CNI_PATH).split(":").filter((d) => d !== "");
}
