/**
 * Pod networking for the CRI: network namespaces held by bind mounts and CNI networks, through the CNI
 * runner (src/core/cni), as containerd's CRI uses go-cni. A pod's address is the first IPv4 address of
 * its eth0 (else the first address), the others are additional addresses, as containerd's selectPodIPs.
 */
import { failedPrecondition } from "../../base/errors.ts";
import { type CniManager, createNetns, removeNetns } from "../cni/mod.ts";
import type { PodNetwork, PodNetworkOptions, PodNetworkResult } from "./sandboxes.ts";

export interface CriNetwork extends PodNetwork {
  /** Undefined when pods can get a network, else containerd's NetworkReady message. */
  notReady(): Promise<string | undefined>;
  /** The verbose Status entries about the network: `cniconfig` and `lastCNILoadStatus`. */
  info(): Promise<Record<string, string>>;
}

export function cniPodNetwork(cni: CniManager, netnsDir: string): CriNetwork {
  const options = (o: PodNetworkOptions) => ({
    args: o.args,
    capabilities: {
      ...(o.portMappings.length > 0 ? { portMappings: o.portMappings.map((p) => ({ ...p })) } : {}),
      ...(o.dns ? { dns: o.dns } : {}),
    },
  });
  return {
    async notReady() {
      const s = await cni.status();
      return s.ready ? undefined : s.message.replace(/^Network plugin returns error: /, "");
    },
    async info() {
      const s = await cni.status();
      return {
        cniconfig: JSON.stringify(cni.configResult()),
        lastCNILoadStatus: s.ready ? "OK" : `cni config load failed: ${s.message}`,
      };
    },
    createNetns: () => createNetns(netnsDir),
    removeNetns: (path) => removeNetns(path),
    async setup(id, netnsPath, o): Promise<PodNetworkResult> {
      const res = await cni.setup(id, netnsPath, options(o));
      const ips = res.ips.filter((ip) => ip.interface === "eth0").map((ip) => ip.address.split("/")[0]!);
      if (ips.length === 0) throw failedPrecondition(`Failed to find network info for sandbox "${id}"`);
      const v4 = ips.find((ip) => ip.includes("."));
      const ip = v4 ?? ips[0]!;
      return { ip, additionalIps: ips.filter((a) => a !== ip) };
    },
    teardown: (id, netnsPath, o) => cni.teardown(id, netnsPath, options(o)),
  };
}

/** Pods without any network but the host's: creating a pod network fails as containerd's CRI does. */
export function noPodNetwork(reason: string): CriNetwork {
  const fail = () => Promise.reject(failedPrecondition(`Failed to set up the pod network: ${reason}`));
  return {
    notReady: () => Promise.resolve(reason),
    info: () => Promise.resolve({ lastCNILoadStatus: reason }),
    createNetns: fail,
    removeNetns: () => Promise.resolve(),
    setup: fail,
    teardown: () => Promise.resolve(),
  };
}
