/**
 * `berth images mount IMAGE TARGET` / `berth images unmount TARGET`, as ctr's: a view (or with --rw an
 * active snapshot) keyed by the target path is made on the image's chain ID and mounted there.
 */
import type { Command } from "commander";
import { chainId } from "../../oci/chain_id.ts";
import type { BerthClient } from "../../client/mod.ts";
import { mountAll, unmountAll } from "../../core/mount/mod.ts";
import { Content } from "../../gen/services/content/v1/content_pb.ts";
import { Images } from "../../gen/services/images/v1/images_pb.ts";
import { Snapshots } from "../../gen/services/snapshots/v1/snapshots_pb.ts";
import { withClient } from "../context.ts";
import { defaultSnapshotter } from "./snapshots.ts";

interface Desc {
  mediaType?: string;
  digest: string;
  platform?: { os?: string; architecture?: string };
}

const INDEX_TYPES = new Set([
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
]);

async function readJson<T>(client: BerthClient, digest: string): Promise<T> {
  const chunks: Uint8Array[] = [];
  for await (const res of client.service(Content).read({ digest })) chunks.push(res.data);
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  return JSON.parse(new TextDecoder().decode(all)) as T;
}

const goArch = (): string =>
  ({ x86_64: "amd64", aarch64: "arm64" } as Record<string, string>)[Deno.build.arch] ?? Deno.build.arch;

/** The chain ID of an image's top layer for this host's platform. */
export async function imageChainId(client: BerthClient, name: string): Promise<string> {
  const { image } = await client.service(Images).get({ name });
  if (!image?.target) throw new Error(`Image "${name}" has no target`);
  let desc: Desc = { mediaType: image.target.mediaType, digest: image.target.digest };
  for (let depth = 0; INDEX_TYPES.has(desc.mediaType ?? ""); depth++) {
    if (depth > 4) throw new Error(`Image "${name}" nests indexes too deeply`);
    const index = await readJson<{ manifests?: Desc[] }>(client, desc.digest);
    const all = index.manifests ?? [];
    const match = all.find((m) => m.platform?.os === "linux" && m.platform.architecture === goArch()) ??
      all.find((m) => !m.platform);
    if (!match) throw new Error(`Image "${name}" has no manifest for linux/${goArch()}`);
    desc = match;
  }
  const manifest = await readJson<{ config?: Desc }>(client, desc.digest);
  if (!manifest.config) throw new Error(`Manifest ${desc.digest} of image "${name}" has no config`);
  const config = await readJson<{ rootfs?: { diff_ids?: string[] } }>(client, manifest.config.digest);
  const ids = config.rootfs?.diff_ids ?? [];
  if (ids.length === 0) throw new Error(`Image "${name}" has no layers`);
  return chainId(ids);
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
          let mounts;
          try {
            mounts = (opts.rw ? await sn.prepare(req) : await sn.view(req)).mounts;
          } catch (err) {
            // Mounting again after an unmount that kept the snapshot reuses it, as ctr does.
            if ((err as { code?: number }).code !== 6) throw err;
            mounts = (await sn.mounts({ snapshotter: opts.snapshotter, key: path })).mounts;
          }
          try {
            mountAll(
              mounts.map((m) => ({ type: m.type, source: m.source, target: m.target, options: m.options })),
              path,
            );
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
      unmountAll(path);
      if (opts.keep) return console.log(path);
      await withClient(cmd, async (client) => {
        await client.service(Snapshots).remove({ snapshotter: opts.snapshotter, key: path });
      });
      console.log(path);
    });
}
