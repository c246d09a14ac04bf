import type { Mount } from "./mount.ts";
import { readonlyMounts, withTempMount } from "./mount.ts";
import { type UserDb, userDbFromRootfs } from "../../oci/user.ts";

/** The users and groups of a rootfs, read through a brief read-only mount of its mounts. */
export function rootfsUserDb(rootfs: readonly Mount[]): Promise<UserDb> {
  return withTempMount(readonlyMounts(rootfs), (root) => userDbFromRootfs(root));
}
