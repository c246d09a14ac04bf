/**
 * Networks for a Docker-style create, from src/docker: the network store (the default `bridge` made on
 * first use), the hosts store and the OCI hooks that attach a container when its task is created.
 */
import { ensureDefaultNetwork, inspectNetwork } from "../../docker/networks.ts";
import { hostResolvConf, HostsStore, resolvConf as containerResolvConf } from "../../docker/hosts.ts";
import { networkHooks as hooksOf } from "../../docker/hook.ts";
import { DEFAULT_NETWORK } from "../../docker/networks.ts";
import type { DockerPaths } from "../../docker/paths.ts";
import type * as oci from "../../oci/mod.ts";

export async function checkNetwork(paths: DockerPaths, name: string): Promise<void> {
  if (name === DEFAULT_NETWORK) await ensureDefaultNetwork(paths);
  else await inspectNetwork(paths, name);
}

export function networkHooks(paths: DockerPaths): oci.Spec["hooks"] {
  return hooksOf(paths);
}

export async function initialHosts(paths: DockerPaths, id: string, hostname: string, _name: string) {
  return await new HostsStore(paths.dataStore, paths.namespace).writeInitialHosts(id, hostname);
}

export async function forgetHosts(paths: DockerPaths, id: string) {
  await new HostsStore(paths.dataStore, paths.namespace).remove(id);
}

export async function resolvConf(dns?: readonly string[]) {
  return containerResolvConf(await hostResolvConf(), { dns });
}
