/**
 * Creating a container from an image as ctr's run.NewContainer does, over any BerthClient: the image's
 * config and unpacked chain ID, a snapshot prepared on it under a lease, a spec from containerd's defaults
 * and the flags, then the container record. The CLI runs it over its connection; the daemon's Run service
 * runs the same steps over its own API, so both make the same records, events and checks. Reading the
 * users of the new rootfs (ctr's WithUser, WithAdditionalGIDs) mounts it on this host: the caller passes
 * that in (`userDb`), as the client never mounts.
 */
import { create } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { BerthClient } from "./mod.ts";
import { clientBlobStore, withLease } from "./stores.ts";
import * as oci from "../oci/mod.ts";
import type { Descriptor } from "../oci/image.ts";
import type { UserDb } from "../oci/user.ts";
import { rootfsOf, type SnapshotMount } from "./mounts.ts";
import { isCode } from "./errors.ts";

export type { SnapshotMount } from "./mounts.ts";

/** ctr's ContainerFlags and snapshotter flags, plus Berth's pull flags (run pulls a missing image). */
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

export interface NewContainer {
  readonly id: string;
  readonly snapshotter: string;
  readonly spec: oci.Spec;
  /** The snapshot's mounts: the task's rootfs (ctr's NewTask sends them; containerd needs them). */
  readonly mounts: readonly SnapshotMount[];
}

export interface ImageRecord {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly target: Descriptor;
}

export interface ResolvedImage {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly config: oci.ImageConfig;
  readonly chainId: string;
}

/** The image record named `ref`, or undefined when there is none. */
export async function imageRecord(client: BerthClient, ref: string): Promise<ImageRecord | undefined> {
  try {
    const record = (await client.images.get({ name: ref })).image;
    if (!record?.target) throw new Error(`Image "${ref}" has no target`);
    const { mediaType, digest, size } = record.target;
    return { name: ref, labels: { ...record.labels }, target: { mediaType, digest, size: Number(size) } };
  } catch (err) {
    if (isCode(err, Code.NotFound)) return undefined;
    throw err;
  }
}

/** The image's config for this host and the chain ID of its layers. */
export async function imageConfigOf(
  client: BerthClient,
  ref: string,
  image: ImageRecord,
): Promise<{ config: oci.ImageConfig; chainId: string }> {
  // Loaded here, not with the module: the other `containers` verbs need no image readers.
  const { imageRootfs } = await import("../oci/image_rootfs.ts");
  const rootfs = await imageRootfs(clientBlobStore(client), image.target);
  if (rootfs.diffIds.length === 0) throw new Error(`Image "${ref}" has no layers`);
  return { config: rootfs.imageConfig, chainId: rootfs.chainId };
}

/** Whether `snapshotter` holds the snapshot `chainId` (the image is unpacked for it). */
export async function hasSnapshot(
  client: BerthClient,
  snapshotter: string,
  chainId: string,
): Promise<boolean> {
  try {
    await client.snapshots.stat({ snapshotter, key: chainId });
    return true;
  } catch (err) {
    if (isCode(err, Code.NotFound)) return false;
    throw err;
  }
}

/** The image `ref` when it is present and unpacked for `snapshotter`, else undefined. */
export async function localImage(
  client: BerthClient,
  ref: string,
  snapshotter: string,
): Promise<ResolvedImage | undefined> {
  const image = await imageRecord(client, ref);
  if (!image) return undefined;
  const { config, chainId } = await imageConfigOf(client, ref, image);
  if (!await hasSnapshot(client, snapshotter, chainId)) return undefined;
  return { name: image.name, labels: image.labels, config, chainId };
}

const number = (flag: string, value: string | undefined): number | undefined => {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) {
    throw new Error(`Invalid ${flag} "${value}": expected a non-negative number`);
  }
  return n;
};

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
  if (flags.annotation?.length) opts.push(oci.withAnnotations(labelArgs(flags.annotation)));
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

/** `K=V` arguments as a map (a bare `K` has the empty value). */
function labelArgs(args: readonly string[]): Record<string, string> {
  return Object.fromEntries(args.map((a) => {
    const i = a.indexOf("=");
    return i < 0 ? [a, ""] : [a.slice(0, i), a.slice(i + 1)];
  }));
}

/** ctr's LabelArgs: `K=V`, or a bare `K` meaning "true". */
function ctrLabels(args: readonly string[]): Record<string, string> {
  return Object.fromEntries(args.map((a) => {
    const i = a.indexOf("=");
    return i < 0 ? [a, "true"] : [a.slice(0, i), a.slice(i + 1)];
  }));
}

/**
 * Creates container `id` from a resolved image. Everything made on the way (the snapshot) is removed again
 * when a later step fails, and nothing that existed before is touched (a duplicate id fails at the
 * snapshot). `envFile` is the content of --env-file, when given.
 */
export async function newContainer(
  client: BerthClient,
  image: ResolvedImage,
  options: {
    id: string;
    ref: string;
    args: readonly string[];
    flags: ContainerFlags;
    namespace: string;
    envFile?: string;
    /** The users and groups of a snapshot, read through a brief read-only mount of its mounts. */
    userDb: (mounts: readonly SnapshotMount[]) => Promise<UserDb>;
  },
): Promise<NewContainer> {
  const { id, args, flags, ref } = options;
  const specOpts = specOptions(image, args, flags, options.envFile);
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
        userDb: () => options.userDb(mounts),
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
      return { id, snapshotter: flags.snapshotter, spec, mounts };
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

/** What runContainerSteps() reports: the task's pid once it started, its status once it exited. */
export type RunStep = { readonly started: number } | { readonly exited: number };

export interface RunSteps {
  readonly ref: string;
  readonly id: string;
  readonly args: readonly string[];
  readonly flags: ContainerFlags;
  readonly namespace: string;
  readonly envFile?: string;
  /** The task's stdio paths; empty: none. */
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly detach: boolean;
  /** After the exit, delete the container and its snapshot too. */
  readonly remove: boolean;
  /** Ends the wait for the exit (the task runs on). */
  readonly signal?: AbortSignal;
  readonly userDb: (mounts: readonly SnapshotMount[]) => Promise<UserDb>;
}

/**
 * ctr's run without its stdio: creates the container from `image` and its task on the given stdio paths,
 * starts it, and (unless detached) waits for the exit and deletes the task (and with `remove` the
 * container). A task that cannot be created or started leaves no container behind.
 */
export async function* runContainerSteps(
  client: BerthClient,
  image: ResolvedImage,
  run: RunSteps,
): AsyncGenerator<RunStep> {
  const { id } = run;
  const { mounts } = await newContainer(client, image, run);
  let pid = 0;
  let waiting: Promise<{ exitStatus: number }> | undefined;
  try {
    await client.tasks.create({
      containerId: id,
      rootfs: rootfsOf(mounts),
      stdin: run.stdin,
      stdout: run.stdout,
      stderr: run.stderr,
      terminal: false,
    });
    // Asked before Start, as ctr does, so that a fast exit is never missed.
    waiting = run.detach
      ? undefined
      : client.tasks.wait({ containerId: id }, { timeoutMs: 0, signal: run.signal });
    waiting?.catch(() => {});
    try {
      pid = (await client.tasks.start({ containerId: id })).pid;
    } catch (err) {
      await client.tasks.delete({ containerId: id }).catch(() => {});
      throw err;
    }
  } catch (err) {
    await deleteContainer(client, id).catch(() => {});
    throw err;
  }
  yield { started: pid };
  if (!waiting) return;
  const { exitStatus } = await waiting;
  await client.tasks.delete({ containerId: id });
  if (run.remove) await deleteContainer(client, id);
  yield { exited: exitStatus };
}
