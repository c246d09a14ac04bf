/**
 * `berth images mount IMAGE TARGET` / `berth images unmount TARGET`, as ctr's: a view (or with --rw an
 * active snapshot) keyed by the target path is made on the image's chain ID and mounted there.
 */
import { Code } from "@connectrpc/connect";
import type { Command } from "commander";
import type { BerthClient } from "../../client/mod.ts";
import { clientBlobStore } from "../../client/stores.ts";
import { imageRootfs } from "../../oci/image_rootfs.ts";
import { Snapshots } from "../../gen/services/snapshots/v1/snapshots_pb.ts";
import { isCode } from "../../client/errors.ts";
import { withClient } from "../context.ts";
import { mountSnapshot, unmountSnapshot } from "../host/mount.ts";
import { defaultSnapshotter } from "./snapshots.ts";

/** The chain ID of an image's top layer for this host's platform. */
export async function imageChainId(client: BerthClient, name: string): Promise<string> {
  const { image } = await client.images.get({ name });
  const t = image?.target;
  if (!t) throw new Error(`Image "${name}" has no target`);
  const target = { mediaType: t.mediaType, digest: t.digest, size: Number(t.size) };
  const { chainId } = await imageRootfs(clientBlobStore(client), target);
  if (!chainId) throw new Error(`Image "${name}" has no layers`);
  return chainId;
}

/** Adds `mount` and `unmount` to the given `images` command group. */
export function addImageMountCommands(images: Command): void {
  images.command("mount").description("Mount an image's root filesystem on a target directory")
    .argument("<image>").argument("<target>")
    .option("--snapshotter <name>", "snapshotter to use", defaultSnapshotter())
    .option("--rw", "mount read-write (an active snapshot) instead of read-only (a view)")
    .action(
      async (name: string, target: string, opts: { snapshotter: string; rw?: boolean }, cmd: Command) => {
        const path = await Deno.realPath(target);
        await withClient(cmd, async (client) => {
          const chain = await imageChainId(client, name);
          const sn = client.service(Snapshots);
          const req = { snapshotter: opts.snapshotter, key: path, parent: chain };
          // As ctr: a lease named after the target holds the snapshot for a day, until unmount drops it.
          const expire = new Date(Date.now() + 24 * 3600_000).toISOString();
          await client.leases.create({
            id: path,
            labels: {
              "containerd.io/gc.expire": expire,
              [`containerd.io/gc.ref.snapshot.${opts.snapshotter}`]: path,
            },
          }).catch((err) => {
            if ((err as { code?: number }).code !== 6) throw err;
          });
          const headers = { "containerd-lease": path };
          let mounts;
          try {
            mounts = (opts.rw ? await sn.prepare(req, { headers }) : await sn.view(req, { headers })).mounts;
          } catch (err) {
            // Mounting again after an unmount that kept the snapshot reuses it, as ctr does.
            if ((err as { code?: number }).code !== 6) throw err;
            mounts = (await sn.mounts({ snapshotter: opts.snapshotter, key: path })).mounts;
          }
          try {
            mountSnapshot(mounts, path);
          } catch (err) {
            await sn.remove({ snapshotter: opts.snapshotter, key: path }).catch(() => {});
            throw new Error(`Cannot mount image "${name}" on ${path}: ${(err as Error).message}`);
          }
          console.log(path);
        });
      },
    );

  images.command("unmount").alias("umount").description("Unmount an image mounted by `images mount`")
    .argument("<target>")
    .option("--snapshotter <name>", "snapshotter to use", defaultSnapshotter())
    .option("--keep", "keep the snapshot (by default it is removed after the unmount)")
    .action(async (target: string, opts: { snapshotter: string; keep?: boolean }, cmd: Command) => {
      const path = await Deno.realPath(target);
      unmountSnapshot(path);
      if (opts.keep) return console.log(path);
      await withClient(cmd, async (client) => {
        // The snapshot goes before its lease: a lease's delete schedules a collection, which may
        // remove the snapshot first. Gone already is what was asked for (as ctr).
        await client.service(Snapshots).remove({ snapshotter: opts.snapshotter, key: path }).catch(
          (err) => {
            if (!isCode(err, Code.NotFound)) throw err;
          },
        );
        await client.leases.delete({ id: path }).catch(() => {});
      });
      console.log(path);
    });
}
