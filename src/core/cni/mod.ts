/** The CNI runner: what the CRI plugin and the Docker-style CLI import. */
export {
  type AttachmentResult,
  type AttachOptions,
  CniManager,
  type CniManagerOptions,
  DEFAULT_BIN_DIRS,
  DEFAULT_CONF_DIR,
  type NetworkRef,
  type NetworkStatus,
  podArgs,
  type SetupIP,
  type SetupResult,
} from "./manager.ts";
export {
  bridgeNetworkConfig,
  type BridgeNetworkOptions,
  bridgeNetworkPath,
  defaultBridgeName,
  writeBridgeNetwork,
} from "./bridge_network.ts";
export { type ConfigProblem, loadConfDir, type LoadedConfigs, parseConf, parseConfList } from "./config.ts";
export { PluginError } from "./exec.ts";
export {
  createNetns,
  netnsCommand,
  type NetnsOptions,
  prepareNetnsDir,
  releaseNetnsDir,
  removeNetns,
  runInNetns,
} from "./netns.ts";
export type {
  BandWidth,
  CapabilityArgs,
  CniArgs,
  CniDNS,
  CniInterface,
  CniIPConfig,
  CniResult,
  CniRoute,
  DNSCapability,
  IPRange,
  NetworkConfigList,
  PluginConfig,
  PortMapping,
} from "./types.ts";
export { SUPPORTED_VERSIONS } from "./version.ts";
