/**
 * Which cgroup hierarchy runc uses here. Its own module, so that the shim's start does not load metrics.ts
 * and the cgroups v1 and v2 metrics descriptors only Stats needs (~2-3 ms of every shim start).
 */
export type CgroupMode = "v1" | "v2";

/** Unified hierarchy when the cgroup2 root itself is mounted at /sys/fs/cgroup (runc then uses v2). */
export function cgroupMode(root = "/sys/fs/cgroup"): CgroupMode {
  try {
    Deno.statSync(`${root}/cgroup.controllers`);
    return "v2";
  } catch {
    return "v1";
  }
}
