import { leasePluginType } from "./ids.ts";
import { LeaseManager } from "../core/leases/mod.ts";
import type { PluginDef } from "./registry.ts";

/** The lease manager over the metadata database (containerd 2's `io.containerd.lease.v1.manager`). */
export const leaseManagerPlugin: PluginDef<LeaseManager> = {
  type: leasePluginType,
  id: "manager",
  init: (ic) => new LeaseManager(ic.db),
};
