/**
 * `berth run` and the container creation it shares with `berth containers create`, as ctr's run.NewContainer:
 * the image (pulled through the daemon when missing, unpacked for the snapshotter), a snapshot prepared on
 * its chain ID under a lease, a spec from containerd's defaults and the flags, then the container record.
 */
import { create } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import type { BerthClient } from "../../client/mod.ts";
import * as oci from "../../oci/mod.ts";
import type { Descriptor } from "../../oci/image.ts";
import { type ClientOptions, globalsOf, repeatable, withClient } from "../globals.ts";
import { ProgressView } from "../progress.ts";
import { parseLabelArgs } from "../table.ts";
import { clientBlobStore, withLease } from "../../client/stores.ts";
import { type Pulled, pullImage, readKeyFiles, registryPb } from "./pull.ts";
import { defaultSnapshotter } from "./snapshots.ts";
import { exitWith, runTask } from "../task_io.ts";
import { userDbOf } from "../host/mount.ts";

export interface ContainerFlags {
  env?: string[];
  envFile?: string;
  mount?: string[];
  label?: string[];
  annotation?: string[];
  memoryLimit?: string;
  cpus?: string;
  cpuShares?: string;
  pidsLimit?: string;
  snapshotter: string;
  runtime: string;
  netHost?: boolean;
  hostname?: string;
  user?: string;
  cwd?: string;
  readOnly?: boolean;
  tty?: boolean;
  capAdd?: string[];
  capDrop?: string[];
  cgroup?: string;
  plainHttp?: boolean;
  registryUser?: string;
  hostsDir?: string;
  skipVerify?: boolean;
  /** Private keys for an encrypted image (ocicrypt), used when it is pulled or unpacked. */
  key?: string[];
}

const isCode = (err: unknown, code: Code) => err instanceof ConnectError && err.code === code;

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

export interface NewContainer {
  readonly id: string;
  readonly snapshotter: string;
  readonly spec: oci.Spec;
}

const number = (flag: string, value: string | undefined): number | undefined => {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) {
    throw new Error(`Invalid ${flag} "${value}": expected a non-negative number`);
  }
  return n;
};

/** Pulls `ref` through the daemon, unpacked for `snapshotter`; progress on stderr when it is a terminal. */
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

export interface ResolvedImage {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly config: oci.ImageConfig;
  readonly chainId: string;
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
  let image: { name: string; labels: Record<string, string>; target: Descriptor };
  let unpacked = "";
  try {
    const record = (await client.images.get({ name: ref })).image;
    if (!record?.target) throw new Error(`Image "${ref}" has no target`);
    const { mediaType, digest, size } = record.target;
    image = { name: ref, labels: { ...record.labels }, target: { mediaType, digest, size: Number(size) } };
  } catch (err) {
    if (!isCode(err, Code.NotFound)) throw err;
    const pulled = await pullMissing(client, ref, flags);
    // A pull records no labels but those asked for, and run asks for none.
    image = { name: pulled.image, labels: {}, target: pulled.target };
    unpacked = pulled.chainId;
  }
  // Read even after a pull: the spec needs the config's process defaults.
  // Loaded here, not with the module: the other `containers` verbs need no image readers.
  const { imageRootfs } = await import("../../oci/image_rootfs.ts");
  const rootfs = await imageRootfs(clientBlobStore(client), image.target);
  if (rootfs.diffIds.length === 0) throw new Error(`Image "${ref}" has no layers`);
  const chainId = unpacked || await ensureUnpacked(client, image.name, rootfs.chainId, flags);
  return { name: image.name, labels: image.labels, config: rootfs.imageConfig, chainId };
}

/** Unpacks `image` into `snapshotter` unless its top snapshot `chainId` is there already. */
async function ensureUnpacked(
  client: BerthClient,
  image: string,
  chainId: string,
  flags: ImageFlags,
): Promise<string> {
  const snapshotter = flags.snapshotter;
  try {
    await client.snapshots.stat({ snapshotter, key: chainId });
    return chainId;
  } catch (err) {
    if (!isCode(err, Code.NotFound)) throw err;
  }
  const decryptionKeys = await readKeyFiles(flags.key);
  return (await client.transfer.unpack({ image, snapshotter, platform: "", decryptionKeys })).chainId ||
    chainId;
}

/** The spec options of ctr's run.NewContainer for the flags, in ctr's order. */
export function specOptions(
  image: ResolvedImage,
  args: readonly string[],
  flags: ContainerFlags,
  envFile: string | undefined,
): oci.SpecOpt[] {
  const opts: oci.SpecOpt[] = [oci.withDefaultUnixDevices];
  if (envFile !== undefined) opts.push(oci.withEnvFile(envFile));
  opts.push(oci.withEnv(flags.env ?? []));
  opts.push(oci.withMounts((flags.mount ?? []).map(oci.parseMountFlag)));
  opts.push(oci.withImageConfig(image.config));
  if (flags.readOnly) opts.push(oci.withReadonlyRootfs);
  if (args.length) opts.push(oci.withArgs(...args));
  if (flags.cwd) opts.push(oci.withProcessCwd(flags.cwd));
  if (flags.user) opts.push(oci.withUser(flags.user), oci.withAdditionalGids(flags.user));
  if (flags.tty) opts.push(oci.withTTY);
  if (flags.netHost) opts.push(oci.withHostNetwork());
  if (flags.hostname) opts.push(oci.withHostname(flags.hostname));
  if (flags.annotation?.length) opts.push(oci.withAnnotations(parseLabelArgs(flags.annotation)));
  for (const cap of [...(flags.capAdd ?? []), ...(flags.capDrop ?? [])]) {
    if (!cap.startsWith("CAP_")) throw new Error(`Invalid capability "${cap}": use the CAP_ prefix`);
  }
  if (flags.capAdd?.length) opts.push(oci.withAddedCapabilities(flags.capAdd));
  if (flags.capDrop?.length) opts.push(oci.withDroppedCapabilities(flags.capDrop));
  const cpus = number("--cpus", flags.cpus);
  if (cpus) opts.push(oci.withCPUs(cpus));
  const shares = number("--cpu-shares", flags.cpuShares);
  if (shares) opts.push(oci.withCPUShares(shares));
  const pids = number("--pids-limit", flags.pidsLimit);
  if (pids) opts.push(oci.withPidsLimit(pids));
  if (flags.cgroup !== undefined) opts.push(oci.withCgroup(flags.cgroup));
  const memory = number("--memory-limit", flags.memoryLimit);
  if (memory) opts.push(oci.withMemoryLimit(memory));
  opts.push(oci.withAnnotations(ctrLabels(flags.label ?? [])));
  return opts;
}

/** ctr's LabelArgs: `K=V`, or a bare `K` meaning "true". */
function ctrLabels(args: readonly string[]): Record<string, string> {
  return Object.fromEntries(args.map((a) => {
    const i = a.indexOf("=");
    return i < 0 ? [a, "true"] : [a.slice(0, i), a.slice(i + 1)];
  }));
}

/**
 * Creates container `id` from `ref`. Everything made on the way (the snapshot) is removed again when a
 * later step fails, and nothing that existed before is touched (a duplicate id fails at the snapshot).
 */
export async function newContainer(
  client: BerthClient,
  ref: string,
  options: { id: string; args: readonly string[]; flags: ContainerFlags; namespace: string },
): Promise<NewContainer> {
  const { id, args, flags } = options;
  const envFile = flags.envFile !== undefined ? await Deno.readTextFile(flags.envFile) : undefined;
  const image = await resolveImage(client, ref, flags);
  const specOpts = specOptions(image, args, flags, envFile);
  return await withLease(client, async (lease) => {
    const headers = { "containerd-lease": lease };
    let mounts;
    try {
      ({ mounts } = await client.snapshots.prepare(
        { snapshotter: flags.snapshotter, key: id, parent: image.chainId },
        { headers },
      ));
    } catch (err) {
      if (isCode(err, Code.AlreadyExists)) {
        throw new Error(`Container "${id}": snapshot ${id} already exists`);
      }
      throw err;
    }
    try {
      const spec = await oci.generateSpec({
        namespace: options.namespace,
        id,
        userDb: () => userDbOf(mounts),
      }, specOpts);
      if (!spec.process?.args?.length) {
        throw new Error(`Cannot create container "${id}": no command given and image "${ref}" has none`);
      }
      const labels = {
        ...image.labels,
        ...(image.config.Labels ?? {}),
        "io.containerd.image.config.stop-signal": image.config.StopSignal || "SIGTERM",
        ...ctrLabels(flags.label ?? []),
      };
      await client.containers.create({
        container: {
          id,
          image: image.name,
          labels,
          runtime: { name: flags.runtime },
          spec: create(AnySchema, { typeUrl: oci.SPEC_TYPE_URL, value: oci.encodeSpec(spec) }),
          snapshotter: flags.snapshotter,
          snapshotKey: id,
        },
      }, { headers });
      return { id, snapshotter: flags.snapshotter, spec };
    } catch (err) {
      await client.snapshots.remove({ snapshotter: flags.snapshotter, key: id }).catch(() => {});
      if (isCode(err, Code.AlreadyExists)) throw new Error(`Container "${id}": already exists`);
      throw err;
    }
  });
}

/** Deletes a container and (unless kept) its snapshot: containerd's Delete(WithSnapshotCleanup). */
export async function deleteContainer(
  client: BerthClient,
  id: string,
  options: { keepSnapshot?: boolean } = {},
): Promise<void> {
  const { container } = await client.containers.get({ id });
  await client.containers.delete({ id });
  if (!options.keepSnapshot && container?.snapshotKey && container.snapshotter) {
    await client.snapshots.remove({ snapshotter: container.snapshotter, key: container.snapshotKey })
      .catch((err) => {
        if (!isCode(err, Code.NotFound)) throw err;
      });
  }
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
    await newContainer(client, ref, { id, args, flags, namespace: globals.namespace });
    let ok = false;
    try {
      const status = await runTask(client, id, {
        terminal: !!flags.tty,
        detach: !!flags.detach,
        nullIO: !!flags.nullIo,
        fifoDir: flags.fifoDir,
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
