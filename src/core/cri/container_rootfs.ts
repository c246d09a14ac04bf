/**
 * What a CRI container takes from its prepared rootfs snapshot before its spec exists: the image's
 * volumes (fresh folders under the container's root, filled with what the image has at that path, as
 * containerd's WithVolumes does) and the rootfs's users and groups for the spec's user.
 */
import { MountPropagation } from "../../gen/k8s/cri/runtime/v1/api_pb.ts";
import { type Mount, readonlyMounts, withTempMount } from "../mount/mod.ts";
import { resolveInRoot } from "../../oci/user.ts";
import type { ImageConfig } from "../../oci/opts.ts";
import { cleanPath } from "./spec_opts.ts";
import { generateId } from "./store.ts";
import type { CriMount } from "./container_spec.ts";

/**
 * containerd's volumeMounts: a folder under `<containerRoot>/volumes` for every volume of the image
 * that no CRI mount covers (the kubelet's mount wins).
 */
export function imageVolumes(
  containerRoot: string,
  image: ImageConfig,
  criMounts: readonly { readonly containerPath: string }[],
): CriMount[] {
  const taken = new Set(criMounts.map((m) => cleanPath(m.containerPath)));
  return Object.keys(image.Volumes ?? {}).filter((dst) => !taken.has(cleanPath(dst))).map((dst) => ({
    containerPath: dst,
    hostPath: `${containerRoot}/volumes/${generateId()}`,
    readonly: false,
    propagation: MountPropagation.PROPAGATION_PRIVATE,
  }));
}

/**
 * Creates each volume's folder and copies into it what the rootfs has at the volume's path (owners,
 * modes and links kept), so a volume over `/var/lib/app` starts with the image's files there.
 */
export async function fillVolumes(rootfs: readonly Mount[], volumes: readonly CriMount[]): Promise<void> {
  if (volumes.length === 0) return;
  for (const v of volumes) await Deno.mkdir(v.hostPath, { recursive: true, mode: 0o755 });
  await withTempMount(readonlyMounts(rootfs), async (root) => {
    for (const v of volumes) {
      const src = await resolveInRoot(root, v.containerPath);
      const info = await Deno.stat(src).catch(() => undefined);
      if (!info) continue;
      if (!info.isDirectory) {
        throw new Error(
          `Image volume ${v.containerPath} is not a directory in the image: remove the volume or the file`,
        );
      }
      await copyTree(src, v.hostPath);
    }
  });
}

/** `cp -aT`: GNU cp keeps owners, modes, times, links, devices and xattrs. */
async function copyTree(src: string, dst: string): Promise<void> {
  const out = await new Deno.Command("cp", {
    args: ["-a", "-T", src, dst],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `Cannot copy image volume ${src} to ${dst}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}
