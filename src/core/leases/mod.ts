/** Leases: namespaced holds that keep resources from garbage collection (containerd's leases.Manager). */
export { type Lease, LEASE_EXPIRE_LABEL, LeaseManager, type LeaseResource } from "./manager.ts";
