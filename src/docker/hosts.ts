/**
 * The hosts and resolv.conf files of Docker-style containers. They live in the core
 * (src/core/dockernet/hosts.ts), beside the network attachment that rewrites them, so that Berth's shim
 * can attach a container in process; the verbs reach them here.
 */
export {
  attachedContainers,
  hostResolvConf,
  type HostsMeta,
  HostsStore,
  renderHosts,
  resolvConf,
  type ResolvConfOptions,
} from "../core/dockernet/hosts.ts";
