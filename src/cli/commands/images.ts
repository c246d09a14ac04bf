import { Code, ConnectError } from "@connectrpc/connect";
import { type Command, Option } from "commander";
import process from "node:process";
import { Writable } from "node:stream";
import type { BerthClient } from "../../client/mod.ts";
import { exportArchive } from "../../client/archive/export.ts";
import { importArchive } from "../../client/archive/import.ts";
import { checkImage } from "../../client/image_check.ts";
import { hostPlatform, parsePlatform, platformMatcher } from "../../oci/platforms.ts";
import type { BlobStore } from "../../oci/blobs.ts";
import type { Descriptor } from "../../oci/image.ts";
import { imageRootfs } from "../../oci/image_rootfs.ts";
import { repeatable, withClient } from "../context.ts";
import { formatBytes, ProgressView } from "../progress.ts";
import { formatLabels, printTable } from "../table.ts";
import { clientBlobStore, clientImageRecords, withLease } from "../../client/stores.ts";
import { addImageMountCommands } from "./mount.ts";
import { addImageCryptCommands } from "./image_crypt.ts";
import {
  pullAction,
  type PullFlags,
  pullOptions,
  type RegistryFlags,
  registryOptions,
  registryPb,
  toItem,
} from "./pull.ts";

export function imagesCommand(program: Command): void {
  const images = program.command("images").alias("image").alias("i").description("Manage images");
  addImageMountCommands(images);
  addImageCryptCommands(images);

  pullOptions(
    images.command("pull").description("Pull an image from a remote (in the daemon)").argument("<ref>"),
  )
    .option("--skip-unpack", "do not unpack the image (fetch only)")
    .action(async (ref: string, opts: PullFlags, cmd: Command) => {
      await pullAction(cmd, ref, { ...opts, unpack: !opts.skipUnpack });
    });

  registryOptions(images.command("push").description("Push an image to a remote (from the daemon)"))
    .argument("<remote>").argument("[local]")
    .option("--platform <platform>", "push content from a specific platform", repeatable)
    .action(
      async (
        remote: string,
        local: string | undefined,
        opts: RegistryFlags & { platform?: string[] },
        cmd,
      ) => {
        await withClient(cmd, async (client) => {
          const view = new ProgressView();
          let digest = "";
          for await (
            const msg of client.transfer.push({
              image: local ?? remote,
              reference: remote,
              registry: registryPb(opts),
              platforms: opts.platform ?? [],
            }, { timeoutMs: 0 })
          ) {
            if (msg.events.length) view.update(msg.events.map(toItem));
            if (msg.target) digest = msg.target.digest;
          }
          const elapsed = view.finish();
          console.log(`pushed: ${remote} ${digest} ${elapsed.toFixed(3)}s`);
        });
      },
    );

  images.command("ls").alias("list").description("List images known to the daemon")
    .option("-q, --quiet", "print only the image refs").argument("[filters...]")
    .action(async (filters: string[], opts: { quiet?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const { images: list } = await client.images.list({ filters });
        if (opts.quiet) {
          for (const img of list) console.log(img.name);
          return;
        }
        const blobs = clientBlobStore(client);
        const matcher = platformMatcher([hostPlatform()]);
        const rows = [["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]];
        for (const img of list) {
          const t = img.target!;
          const target = { mediaType: t.mediaType, digest: t.digest, size: Number(t.size) };
          let size = "-";
          let platforms = "-";
          try {
            const c = await checkImage(blobs, target, matcher);
            size = formatBytes(c.present.reduce((n, d) => n + d.size, 0));
            platforms = c.platforms.join(",") || "-";
          } catch { /* shown as "-" like ctr, which logs the error */ }
          rows.push([img.name, t.mediaType, t.digest, size, platforms, formatLabels(img.labels) || "-"]);
        }
        printTable(rows, 1);
      });
    });

  images.command("check").description("Check existing images to ensure all content is available locally")
    .option("-q, --quiet", "print only the ready image refs")
    .option("--snapshotter <name>", "snapshotter name", "overlayfs")
    .argument("[filters...]")
    .action(async (filters: string[], opts: { quiet?: boolean; snapshotter: string }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const { images: list } = await client.images.list({ filters });
        const blobs = clientBlobStore(client);
        const matcher = platformMatcher([hostPlatform()]);
        const rows = [["REF", "TYPE", "DIGEST", "STATUS", "SIZE", "UNPACKED"]];
        for (const img of list) {
          const t = img.target!;
          const target = { mediaType: t.mediaType, digest: t.digest, size: Number(t.size) };
          const c = await checkImage(blobs, target, matcher);
          const sum = (ds: readonly { size: number }[]) => ds.reduce((n, d) => n + d.size, 0);
          let status = c.missing.length ? "incomplete" : "complete";
          let size = `${formatBytes(sum(c.present))}/${formatBytes(sum(c.required))}`;
          if (c.available) status += ` (${c.present.length}/${c.required.length})`;
          else [status, size] = [`unavailable (${c.present.length}/?)`, `${formatBytes(sum(c.present))}/?`];
          const unpacked = c.config ? await isUnpacked(client, blobs, target, opts.snapshotter) : false;
          if (opts.quiet) {
            if (c.available && c.missing.length === 0) console.log(img.name);
            continue;
          }
          rows.push([img.name, t.mediaType, t.digest, status, size, String(unpacked)]);
        }
        if (!opts.quiet) printTable(rows, 1);
      });
    });

  images.command("rm").alias("remove").alias("delete").description("Remove one or more images by reference")
    .option("--sync", "synchronously remove image and all associated resources")
    .argument("<refs...>")
    .action(async (refs: string[], opts: { sync?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        let failed = 0;
        for (const name of refs) {
          try {
            await client.images.delete({ name, sync: !!opts.sync });
            console.log(name);
          } catch (err) {
            if (err instanceof ConnectError && err.code === Code.NotFound) {
              console.error(`berth: Image ${name} not found`);
            } else console.error(`berth: Cannot remove image ${name}: ${(err as Error).message}`);
            failed++;
          }
        }
        if (failed) throw new Error(`${failed} of ${refs.length} images were not removed`);
      });
    });

  images.command("tag").description("Tag an image").argument("<source>").argument("<targets...>")
    .option("--force", "force target_ref to be created, regardless if it already exists")
    .action(async (source: string, targets: string[], opts: { force?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const { image } = await client.images.get({ name: source });
        for (const name of targets) {
          const next = { name, target: image!.target, labels: image!.labels };
          try {
            await client.images.create({ image: next });
          } catch (err) {
            if (!(opts.force && err instanceof ConnectError && err.code === Code.AlreadyExists)) throw err;
            await client.images.delete({ name });
            await client.images.create({ image: next });
          }
          console.log(name);
        }
      });
    });

  images.command("import").description(
    "Import images from an OCI layout or docker save tarball (- for stdin)",
  )
    .argument("<in>")
    .option(
      "--base-name <name>",
      "base image name for added images; when given, only images with this name are imported",
    )
    .option("--digests", "whether to create digest images (default: false)")
    .option("--index-name <name>", "image name to keep the index as (by default the index is not kept)")
    .option("--all-platforms", "import content for all platforms")
    .option("--platform <platform>", "import content for a specific platform")
    .option("--snapshotter <name>", "snapshotter to unpack into (default: the daemon's)")
    .addOption(new Option("--no-unpack", "skip unpacking the images"))
    .action(async (input: string, opts: ImportFlags, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const file = input === "-" ? Deno.stdin : await Deno.open(input);
        const names = await withLease(client, async (lease) => {
          const res = await importArchive(
            { blobs: clientBlobStore(client, { lease }), records: clientImageRecords(client, { lease }) },
            file.readable,
            {
              baseName: opts.baseName,
              indexName: opts.indexName,
              digests: !!opts.digests,
              allPlatforms: !!opts.allPlatforms,
              platforms: opts.platform ? [parsePlatform(opts.platform)] : undefined,
            },
          );
          return res.images.map((i) => ({ name: i.name, digest: i.target.digest }));
        });
        for (const { name, digest } of names) {
          if (opts.unpack === false) {
            console.log(`${name} ${digest}`);
            continue;
          }
          // As ctr does: unpack each image so it can run at once; the daemon skips chains it has.
          Deno.stdout.writeSync(new TextEncoder().encode(`unpacking ${name} (${digest})...`));
          await client.transfer.unpack({
            image: name,
            snapshotter: opts.snapshotter ?? "",
            platform: opts.platform ?? "",
          });
          console.log("done");
        }
      });
    });

  images.command("export").description("Export images to an OCI layout tarball (- for stdout)")
    .argument("<out>").argument("<refs...>")
    .option("--all-platforms", "export content for all platforms")
    .option("--platform <platform>", "export content for a specific platform", repeatable)
    .option("--skip-manifest-json", "do not add Docker compatible manifest.json to the archive")
    .action(async (out: string, refs: string[], opts: ExportFlags, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const tmp = out === "-" ? undefined : `${out}.tmp-${Deno.pid}`;
        const sink = tmp === undefined
          ? Writable.toWeb(process.stdout) as WritableStream<Uint8Array>
          : (await Deno.open(tmp, { write: true, create: true, truncate: true })).writable;
        try {
          await exportArchive(
            { blobs: clientBlobStore(client), records: clientImageRecords(client) },
            refs,
            sink,
            {
              allPlatforms: !!opts.allPlatforms,
              platforms: opts.platform?.map(parsePlatform),
              skipDockerManifest: !!opts.skipManifestJson,
            },
          );
          if (tmp) await Deno.rename(tmp, out);
        } catch (err) {
          if (tmp) await Deno.remove(tmp).catch(() => {});
          throw err;
        }
      });
    });
}

interface ImportFlags {
  baseName?: string;
  indexName?: string;
  digests?: boolean;
  allPlatforms?: boolean;
  platform?: string;
  snapshotter?: string;
  unpack?: boolean;
}

interface ExportFlags {
  allPlatforms?: boolean;
  platform?: string[];
  skipManifestJson?: boolean;
}

/** Whether the image's top snapshot (for this host's platform) exists in `snapshotter`. */
async function isUnpacked(
  client: BerthClient,
  blobs: BlobStore,
  target: Descriptor,
  snapshotter: string,
): Promise<boolean> {
  try {
    const { chainId } = await imageRootfs(blobs, target);
    if (!chainId) return false;
    await client.snapshots.stat({ snapshotter, key: chainId });
    return true;
  } catch {
    return false;
  }
}
