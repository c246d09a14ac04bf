/**
 * Pulls run in the daemon (its Transfer service): the flags `images pull` and `content fetch` share, and
 * the progress stream `run` also reads when it pulls a missing image.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Command } from "commander";
import type { ApiConnection } from "../../client/connection.ts";
import type { Descriptor } from "../../oci/image.ts";
import { formatPlatform, hostPlatform } from "../../oci/platforms.ts";
import {
  type ProgressEvent,
  type PullRequestSchema,
  Status,
  Transfer,
} from "../../gen/berth/transfer/v1/transfer_pb.ts";
import { type ClientOptions, globalsOf, repeatable } from "../global_flags.ts";
import { withConnection } from "../api_connection.ts";
import { type ProgressItem, ProgressView } from "../progress.ts";
import { parseLabelArgs } from "../table.ts";

export interface RegistryFlags {
  plainHttp?: boolean;
  user?: string;
  hostsDir?: string;
  skipVerify?: boolean;
}

export interface PullFlags extends RegistryFlags {
  platform?: string[];
  allPlatforms?: boolean;
  snapshotter?: string;
  skipUnpack?: boolean;
  maxConcurrentDownloads?: string;
  label?: string[];
  key?: string[];
}

/** The registry flags of `images pull`, `images push` and `content fetch`. */
export function registryOptions(cmd: Command): Command {
  return cmd
    .option("--plain-http", "allow connections using plain HTTP")
    .option("-u, --user <user:password>", "user[:password] registry user and password")
    .option("--hosts-dir <dir>", "custom hosts configuration directory (hosts.toml)")
    .option("-k, --skip-verify", "skip SSL certificate validation");
}

/** The flags of `images pull` (also used by `content fetch`). */
export function pullOptions(cmd: Command): Command {
  return registryOptions(cmd)
    .option("--platform <platform>", "pull content from a specific platform (repeatable)", repeatable)
    .option("--all-platforms", "pull content and metadata from all platforms")
    .option("--snapshotter <name>", "snapshotter name (default: the daemon's)")
    .option("--max-concurrent-downloads <n>", "set the max concurrent downloads for each pull")
    .option("--label <key=value>", "labels to attach to the image (repeatable)", repeatable)
    .option(
      "--key <file>",
      "private key (PEM) to decrypt an encrypted image when unpacking (repeatable)",
      repeatable,
    );
}

/** The registry flags as the Transfer service takes them. */
export function registryPb(f: RegistryFlags) {
  return {
    plainHttp: !!f.plainHttp,
    user: f.user ?? "",
    hostsDir: f.hostsDir ?? "",
    skipVerify: !!f.skipVerify,
  };
}

const STATUS_NAMES: Record<number, string> = {
  [Status.RESOLVING]: "resolving",
  [Status.WAITING]: "waiting",
  [Status.DOWNLOADING]: "downloading",
  [Status.UPLOADING]: "uploading",
  [Status.UNPACKING]: "unpacking",
  [Status.DONE]: "done",
  [Status.EXISTS]: "exists",
  [Status.ERROR]: "error",
};

/** A progress event of the Transfer service as the progress view shows it. */
export function toItem(e: ProgressEvent): ProgressItem {
  return {
    ref: e.ref,
    status: STATUS_NAMES[e.status] ?? "unknown",
    offset: Number(e.offset),
    total: Number(e.total),
    resumedFrom: Number(e.resumedFrom),
    error: e.error,
  };
}

/** What the last message of a pull reports. */
export interface Pulled {
  /** The name the image was recorded under. */
  readonly image: string;
  readonly target: Descriptor;
  /** The chain ID of the unpacked snapshot; "" when not unpacked. */
  readonly chainId: string;
}

/** The contents of the --key files, as the Transfer service takes them. */
export async function readKeyFiles(paths: readonly string[] | undefined): Promise<Uint8Array[]> {
  return await Promise.all((paths ?? []).map(async (p) => {
    try {
      return await Deno.readFile(p);
    } catch (err) {
      throw new Error(`Cannot read key ${p}: ${(err as Error).message}`);
    }
  }));
}

/** Runs a pull in the daemon, passing its progress to `view` when given. */
export async function pullImage(
  conn: ApiConnection,
  request: MessageInitShape<typeof PullRequestSchema>,
  view?: ProgressView,
): Promise<Pulled> {
  let pulled: Pulled | undefined;
  for await (const msg of conn.service(Transfer).pull(request, { timeoutMs: 0 })) {
    if (view && msg.events.length) view.update(msg.events.map(toItem));
    if (msg.image) {
      const t = msg.target;
      pulled = {
        image: msg.image,
        target: { mediaType: t?.mediaType ?? "", digest: t?.digest ?? "", size: Number(t?.size ?? 0n) },
        chainId: msg.chainId,
      };
    }
  }
  if (!pulled) throw new Error(`Cannot pull "${request.reference}": the daemon did not report the image`);
  return pulled;
}

/** `images pull` and `content fetch`: a pull in the daemon, its progress shown, as ctr reports it. */
export async function pullAction(
  cmd: Command | ClientOptions,
  ref: string,
  flags: PullFlags & { unpack: boolean },
): Promise<void> {
  // A pull calls Transfer only: a bare connection builds no other service's descriptors.
  const globals = "opts" in cmd ? globalsOf(cmd) : cmd;
  await withConnection(globals, async (conn) => {
    const view = new ProgressView();
    const { image, target, chainId } = await pullImage(conn, {
      reference: ref,
      platforms: flags.platform ?? [],
      allPlatforms: !!flags.allPlatforms,
      registry: registryPb(flags),
      snapshotter: flags.snapshotter ?? "",
      unpack: flags.unpack,
      maxConcurrentDownloads: Number(flags.maxConcurrentDownloads ?? 0),
      labels: parseLabelArgs(flags.label ?? []),
      decryptionKeys: await readKeyFiles(flags.key),
    }, view);
    const elapsed = view.finish();
    if (chainId) {
      const platforms = flags.platform?.length ? flags.platform : [formatPlatform(hostPlatform())];
      console.log(`unpacked ${platforms[0]} ${target.digest}`);
    }
    console.log(`done: ${image} ${target.digest} ${elapsed.toFixed(3)}s`);
  });
}
