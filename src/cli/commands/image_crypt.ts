/**
 * `images encrypt` and `images decrypt`, with nerdctl's flags (imgcrypt's ctr-enc before it): the
 * layers are rewritten client-side over the Content service, as ctr-enc does, and the new manifests and
 * index are recorded under the target name, ready to push.
 */
import type { Command } from "commander";
import { clientBlobStore, clientImageRecords, withLease } from "../../client/stores.ts";
import { parsePlatform, platformMatcher } from "../../oci/platforms.ts";
import { repeatable, withClient } from "../context.ts";

interface CryptFlags {
  platform?: string[];
  allPlatforms?: boolean;
  layer?: string[];
}

function cryptOptions(cmd: Command): Command {
  return cmd
    .option(
      "--platform <platform>",
      "only the manifests of this platform (repeatable; default all)",
      repeatable,
    )
    .option("--all-platforms", "every platform of an index (the default)")
    .option(
      "--layer <n>",
      "only this layer: its index from 0, or from -1 for the topmost (repeatable; default all)",
      repeatable,
    )
    .argument("<source>")
    .argument("<target>");
}

function layersOf(flags: CryptFlags): number[] | undefined {
  if (!flags.layer?.length) return undefined;
  return flags.layer.map((l) => {
    const n = Number(l);
    if (!Number.isInteger(n)) {
      throw new Error(`Invalid --layer "${l}": expected a layer number (negative from the top)`);
    }
    return n;
  });
}

export function addImageCryptCommands(images: Command): void {
  cryptOptions(
    images.command("encrypt").description("Encrypt an image's layers for recipients (ocicrypt, JWE)"),
  )
    .requiredOption("--recipient <jwe:PUBKEY.pem>", "recipient of the layer keys (repeatable)", repeatable)
    .action(
      async (source: string, target: string, flags: CryptFlags & { recipient: string[] }, cmd: Command) => {
        const { encryptImage, readRecipient } = await import("../../oci/imgcrypt/mod.ts");
        const recipients = await Promise.all(flags.recipient.map(readRecipient));
        await crypt(cmd, source, target, "Encrypting", (blobs, desc) =>
          encryptImage(blobs, desc, {
            recipients,
            platforms: platformsOf(flags),
            layers: layersOf(flags),
          }));
      },
    );

  cryptOptions(images.command("decrypt").description("Decrypt an image's encrypted layers with private keys"))
    .requiredOption(
      "--key <PRIVKEY.pem>",
      "private key to unwrap the layer keys with (repeatable)",
      repeatable,
    )
    .action(async (source: string, target: string, flags: CryptFlags & { key: string[] }, cmd: Command) => {
      const { decryptImage, readPrivateKeys } = await import("../../oci/imgcrypt/mod.ts");
      const keys = await readPrivateKeys(flags.key);
      await crypt(cmd, source, target, "Decrypting", (blobs, desc) =>
        decryptImage(blobs, desc, {
          keys,
          platforms: platformsOf(flags),
          layers: layersOf(flags),
        }));
    });
}

function platformsOf(flags: CryptFlags) {
  if (flags.allPlatforms || !flags.platform?.length) return undefined;
  return platformMatcher(flags.platform.map(parsePlatform));
}

type Op = (
  blobs: ReturnType<typeof clientBlobStore>,
  target: { mediaType: string; digest: string; size: number },
) => Promise<{ mediaType: string; digest: string; size: number }>;

async function crypt(cmd: Command, source: string, target: string, verb: string, op: Op): Promise<void> {
  await withClient(cmd, async (client) => {
    // The blobs written are held by a lease until the image record names them.
    await withLease(client, async (lease) => {
      const records = clientImageRecords(client, { lease });
      const src = await records.get(source);
      console.log(`${verb} ${source} to ${target}`);
      const next = await op(clientBlobStore(client, { lease }), src.target);
      await records.put({ name: target, target: next, labels: src.labels });
    });
  });
}
