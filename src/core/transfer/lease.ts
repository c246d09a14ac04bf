import { LEASE_EXPIRE_LABEL, type LeaseManager } from "../leases/mod.ts";

/** Adds a resource (`content`, `ingests`, `snapshots/<snapshotter>`) to the running transfer's lease. */
export type Hold = (type: string, id: string) => Promise<void>;

/**
 * Marks the leases the daemon takes for its own work (pulls, unpacks): nobody can finish that work
 * after the daemon died, so the next start deletes them (dropDaemonLeases) and GC takes what they held,
 * an unpack's `extract-…` snapshot included, instead of keeping it for the day the lease would last.
 */
export const DAEMON_LEASE_LABEL = "berth.io/daemon-lease";

/** Deletes the leases a previous run of the daemon took for itself; returns how many. */
export function dropDaemonLeases(leases: LeaseManager): number {
  return leases.deleteLabelledSync(DAEMON_LEASE_LABEL);
}

/** containerd's client leases expire after a day, so that a daemon that died mid-transfer drops them. */
const LEASE_TTL_MS = 24 * 3600_000;

/**
 * Runs `fn` with a lease of its own, as containerd's client runs a pull under WithLease: whatever `fn`
 * holds survives garbage collection until the lease is deleted, after `fn` has recorded the image
 * that references it. Without a lease manager (leases disabled) holding does nothing.
 */
export async function withLease<T>(
  ns: string,
  fn: (hold: Hold) => Promise<T>,
  options: { leases?: LeaseManager } = {},
): Promise<T> {
  const { leases } = options;
  if (!leases) return await fn(() => Promise.resolve());
  const expire = new Date(Date.now() + LEASE_TTL_MS).toISOString();
  const labels = { [LEASE_EXPIRE_LABEL]: expire, [DAEMON_LEASE_LABEL]: String(Deno.pid) };
  const lease = (await leases.create(ns, { labels })).id;
  try {
    return await fn((type, id) => leases.addResource(ns, lease, { type, id }));
  } finally {
    await leases.delete(ns, lease).catch(() => {});
  }
}
