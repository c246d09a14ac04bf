/**
 * Pod networking when no CNI network can be used: host-network pods still run, any other pod fails the
 * way containerd's CRI fails without a CNI config.
 */
import { failedPrecondition } from "../../base/errors.ts";
import type { PodNetwork } from "./sandboxes.ts";

export function noPodNetwork(reason: string): PodNetwork {
  const fail = () => Promise.reject(failedPrecondition(`Failed to set up the pod network: ${reason}`));
  return {
    createNetns: fail,
    removeNetns: () => Promise.resolve(),
    setup: fail,
    teardown: () => Promise.resolve(),
  };
}
