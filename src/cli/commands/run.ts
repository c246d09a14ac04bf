/**
 * `berth run` and the container creation it shares with `berth containers create`, as ctr's run.NewContainer:
 * the image (pulled through the daemon when missing, unpacked for the snapshotter), a snapshot prepared on
 * its chain ID under a lease, a spec from containerd's defaults and the flags, then the container record.
 */
import { ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import type { BerthClient } from "../../client/mod.ts";
import {
  type ContainerFlags,
  deleteContainer,
  hasSnapshot,
  imageConfigOf,
  imageRecord,
  type NewContainer,
  newContainer as createContainer,
  type ResolvedImage,
} from "../../client/new_container.ts";
import { type ClientOptions, globalsOf, repeatable, withClient } from "../globals.ts";
import { ProgressView } from "../progress.ts";
import { type Pulled, pullImage, readKeyFiles, registryPb } from "./pull.ts";
import { defaultSnapshotter } from "./snapshots.ts";
import { exitWith, runTask } from "../task_io.ts";
import { userDbOf } from "../host/mount.ts";

export { type ContainerFlags, deleteContainer, type NewContainer, type ResolvedImage };

/** ctr's ContainerFlags and snapshotter flags, plus Berth's pull flags (run pulls a missing image). */
export function containerOptions(cmd: Command, options: { run: boolean }): Command {
  cmd
    .option("--env <K=V>", "specify additional container environment variables (repeatable)", repeatable)
    .option(
      "--env-file <file>",
      "specify additional container environment variables in a file (K=V per line)",
    )
    .option(
      "--mount <spec>",
      "additional mount, e.g. type=bind,src=/tmp,dst=/host,options=rbind:ro",
      repeatable,
    )
    .option("--label <K=V>", "specify additional labels (repeatable)", repeatable)
    .option("--annotation <K=V>", "specify additional OCI annotations (repeatable)", repeatable)
    .option("--memory-limit <bytes>", "memory limit (in bytes) for the container")
    .option("--pids-limit <n>", "limit the number of processes in the container")
    .option("--snapshotter <name>", "snapshotter name (env CONTAINERD_SNAPSHOTTER)", defaultSnapshotter())
    .option("--runtime <name>", "runtime name", "io.containerd.runc.v2")
    .option("--net-host", "enable host networking for the container")
    .option("--hostname <name>", "set the container's host name")
    .option("-u, --user <user>", "username or user id, group optional (format: <name|uid>[:<group|gid>])")
    .option("--cwd <dir>", "specify the working directory of the process")
    .option("--read-only", "set the container's filesystem as readonly")
    .option("-t, --tty", "allocate a TTY for the container")
    .option("--cap-add <cap>", "add Linux capabilities (with the CAP_ prefix)", repeatable)
    .option("--cap-drop <cap>", "drop Linux capabilities (with the CAP_ prefix)", repeatable)
    .option("--cgroup <path>", "cgroup path (default /<namespace>/<id>)")
    .option("--plain-http", "pull a missing image over plain HTTP")
    .option("--registry-user <user:password>", "registry credentials to pull a missing image")
    .option("--hosts-dir <dir>", "custom hosts configuration directory (hosts.toml) for the pull")
    .option("-k, --skip-verify", "skip TLS certificate validation for the pull")
    .option("--key <file>", "private key (PEM) to decrypt an encrypted image (repeatable)", repeatable);
  if (options.run) {
    cmd.option("--cpus <n>", "set the CFS cpu quota (in CPUs, e.g. 0.5)")
      .option("--cpu-shares <n>", "set the cpu shares", "1024");
  }
  return cmd.argument("<image>").argument("<id>").argument("[command...]").passThroughOptions();
}

/** What resolving an image needs of the flags: where to unpack, and how to pull when missing. */
export type ImageFlags = Pick<
  ContainerFlags,
  "snapshotter" | "plainHttp" | "registryUser" | "hostsDir" | "skipVerify" | "key"
>;

async function pullMissing(client: BerthClient, ref: string, flags: ImageFlags): Promise<Pulled> {
  const view = Deno.stderr.isTerminal()
    ? new ProgressView({ write: (t) => Deno.stderr.writeSync(new TextEncoder().encode(t)) })
    : undefined;
  try {
    return await pullImage(client, {
      reference: ref,
      // --user is the container's user here; the registry's is --registry-user.
      registry: registryPb({
        plainHttp: flags.plainHttp,
        user: flags.registryUser,
        hostsDir: flags.hostsDir,
        skipVerify: flags.skipVerify,
      }),
      snapshotter: flags.snapshotter,
      unpack: true,
      decryptionKeys: await readKeyFiles(flags.key),
    }, view);
  } catch (err) {
    const why = err instanceof ConnectError ? err.rawMessage : (err as Error).message;
    throw new Error(`Image "${ref}" is not present and cannot be pulled: ${why}`);
  } finally {
    view?.finish();
  }
}

/**
 * The image (pulled when missing), its config for this host, and the chain ID of its unpacked snapshot:
 * the one the pull reports, else the image's own, unpacked first when the snapshotter lacks it.
 */
export async function resolveImage(
  client: BerthClient,
  ref: string,
  flags: ImageFlags,
): Promise<ResolvedImage> {
  let image = await imageRecord(client, ref);
  let unpacked = "";
  if (!image) {
    const pulled = await pullMissing(client, ref, flags);
    // A pull records no labels but those asked for, and run asks for none.
    image = { name: pulled.image, labels: {}, target: pulled.target };
    unpacked = pulled.chainId;
  }
  // Read even after a pull: the spec needs the config's process defaults.
  const { config, chainId } = await imageConfigOf(client, ref, image);
  return {
    name: image.name,
    labels: image.labels,
    config,
    chainId: unpacked || await ensureUnpacked(client, image.name, chainId, flags),
  };
}

/** Unpacks `image` into `snapshotter` unless its top snapshot `chainId` is there already. */
async function ensureUnpacked(
  client: BerthClient,
  image: string,
  chainId: string,
  flags: ImageFlags,
): Promise<string> {
  if (await hasSnapshot(client, flags.snapshotter, chainId)) return chainId;
  const decryptionKeys = await readKeyFiles(flags.key);
  const snapshotter = flags.snapshotter;
  const unpacked = await client.transfer.unpack({ image, snapshotter, platform: "", decryptionKeys });
  return unpacked.chainId || chainId;
}

/** Creates container `id` from `ref` (pulled or unpacked first when needed), as ctr's run.NewContainer. */
export async function newContainer(
  client: BerthClient,
  ref: string,
  options: { id: string; args: readonly string[]; flags: ContainerFlags; namespace: string },
): Promise<NewContainer> {
  const envFile = options.flags.envFile !== undefined
    ? await Deno.readTextFile(options.flags.envFile)
    : undefined;
  const image = await resolveImage(client, ref, options.flags);
  return await createContainer(client, image, { ...options, ref, envFile, userDb: userDbOf });
}

export interface RunFlags extends ContainerFlags {
  rm?: boolean;
  detach?: boolean;
  nullIo?: boolean;
  fifoDir?: string;
}

export function runCommand(program: Command): void {
  containerOptions(
    program.command("run").description("Run a container (pulling its image when missing)"),
    { run: true },
  )
    .option("--rm", "remove the container after running, cannot be used with --detach")
    .option("-d, --detach", "detach from the task after it has started execution")
    .option("--null-io", "send all IO to /dev/null")
    .option("--fifo-dir <dir>", "directory used for storing IO FIFOs")
    .action((ref: string, id: string, args: string[], flags: RunFlags, cmd: Command) =>
      runContainer(ref, id, { args, flags, globals: globalsOf(cmd) })
    );
}

/** `ctr run`'s action: create the container, run its task with this process's stdio, exit with its status. */
export async function runContainer(
  ref: string,
  id: string,
  options: { args: string[]; flags: RunFlags; globals: ClientOptions },
): Promise<void> {
  const { args, flags, globals } = options;
  if (flags.rm && flags.detach) throw new Error("Flags --detach and --rm cannot be specified together");
  const code = await withClient(globals, async (client) => {
    const made = await newContainer(client, ref, { id, args, flags, namespace: globals.namespace });
    let ok = false;
    try {
      const status = await runTask(client, id, {
        terminal: !!flags.tty,
        detach: !!flags.detach,
        nullIO: !!flags.nullIo,
        fifoDir: flags.fifoDir,
        rootfs: made.mounts,
      });
      ok = true;
      if (flags.rm) await deleteContainer(client, id);
      return status;
    } finally {
      // A task that could not be created or started leaves no container behind, --rm or not.
      if (!ok) await deleteContainer(client, id).catch(() => {});
    }
  });
  exitWith(code);
}
