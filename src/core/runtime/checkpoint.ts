/**
 * Task checkpoints as containerd 1.6's Tasks service makes and restores them: the shim dumps the task
 * with CRIU into a folder, which goes into the content store as one uncompressed tar next to the
 * container's spec; the client (ctr) then writes the image index. A task created from such a tar gets
 * it unpacked into its bundle, and the shim runs `runc restore` from there at Start.
 */

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import type { ContentStore } from "../content/mod.ts";
import type { AnyValue } from "../containers/mod.ts";
import { applyLayer, uncompressedLayerType, writeDiff } from "../diff/mod.ts";
import { BerthError, invalidArgument, isAlreadyExists, isNotFound, notFound } from "../../base/errors.ts";
import type { LeaseManager } from "../leases/mod.ts";
import { CheckpointOptionsSchema, OptionsSchema } from "../../gen/types/runc/options/oci_pb.ts";
import type { ShimTask } from "./task.ts";

/** The CRIU image folder as a tar (images/mediatypes.go). */
export const MEDIA_TYPE_CHECKPOINT = "application/vnd.containerd.container.criu.checkpoint.criu.tar";
/** The container's spec: a google.protobuf.Any in protobuf form. */
export const MEDIA_TYPE_CHECKPOINT_CONFIG = "application/vnd.containerd.container.checkpoint.config.v1+proto";

const CHECKPOINT_OPTIONS_TYPE = "containerd.runc.v1.CheckpointOptions";
const RUNC_OPTIONS_TYPE = "containerd.runc.v1.Options";
/** Where, in a bundle, the image of a task being restored is unpacked. */
const RESTORE_DIR = "checkpoint";

/** containerd.types.Descriptor as the Tasks service returns it. */
export interface CheckpointDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations: Readonly<Record<string, string>>;
}

export interface CheckpointStore {
  readonly content: ContentStore;
  /** When absent (leases disabled), the `lease` of a call is ignored. */
  readonly leases?: LeaseManager;
}

export interface CheckpointTaskOptions {
  readonly store: CheckpointStore;
  /** The folder the CRIU image is dumped into, in a fresh temporary folder (always removed). */
  readonly tempRoot: string;
  /** The container's runtime name: its checkpoint options are read only for runc runtimes. */
  readonly runtime: string;
  /** The container's spec (written next to the image, as containerd does). */
  readonly spec: AnyValue | undefined;
  /** CheckpointTaskRequest.options: containerd.runc.v1.CheckpointOptions. */
  readonly options?: AnyValue;
  /** The request's lease: the blobs written are added to it. */
  readonly lease?: string;
  readonly signal?: AbortSignal;
}

function isRunc(runtime: string): boolean {
  return runtime.startsWith("io.containerd.runc");
}

function typeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
}

/**
 * The image path a runc checkpoint request names (containerd's getCheckpointPath): the shim then writes
 * there and nothing goes to the content store. "" when the image is to be stored.
 */
export function checkpointImagePath(runtime: string, options: AnyValue | undefined): string {
  if (!options || !isRunc(runtime)) return "";
  if (typeName(options.typeUrl) !== CHECKPOINT_OPTIONS_TYPE) {
    throw invalidArgument(
      `Invalid task checkpoint option for ${runtime}: ${options.typeUrl} is not ${CHECKPOINT_OPTIONS_TYPE}`,
    );
  }
  return fromBinary(CheckpointOptionsSchema, options.value).imagePath;
}

/** The CRIU image a runc task create names through its options' criu_image_path (containerd's getRestorePath). */
export function restoreImagePath(runtime: string, options: AnyValue | undefined): string {
  if (!options || !isRunc(runtime) || options.value.length === 0) return "";
  if (typeName(options.typeUrl) !== RUNC_OPTIONS_TYPE) {
    throw invalidArgument(
      `Invalid task create option for ${runtime}: ${options.typeUrl} is not ${RUNC_OPTIONS_TYPE}`,
    );
  }
  return fromBinary(OptionsSchema, options.value).criuImagePath;
}

/**
 * Checkpoints a task: the shim dumps it into a temporary folder, which is stored as a tar blob, then the
 * container's spec. Returns [image, spec] descriptors, or none when the options name an image path.
 */
export async function checkpointTask(
  task: ShimTask,
  options: CheckpointTaskOptions,
): Promise<CheckpointDescriptor[]> {
  const given = checkpointImagePath(options.runtime, options.options);
  const call = (path: string) =>
    task.checkpoint(path, { runtimeOptions: options.options, signal: options.signal, timeoutMs: 5 * 60_000 });
  if (given !== "") {
    await call(given);
    return [];
  }
  await Deno.mkdir(options.tempRoot, { recursive: true, mode: 0o700 });
  const tmp = await Deno.makeTempDir({ dir: options.tempRoot, prefix: "ctd-checkpoint" });
  try {
    const image = `${tmp}/image`;
    const empty = `${tmp}/empty`;
    await Deno.mkdir(image, { mode: 0o700 });
    await Deno.mkdir(empty, { mode: 0o700 });
    await call(image);
    const ns = task.namespace;
    const tar = await writeCheckpointBlob(options.store, ns, {
      ref: `checkpoint-${ns}-${task.id}-${tmp.slice(tmp.lastIndexOf("/") + 1)}`,
      mediaType: MEDIA_TYPE_CHECKPOINT,
      data: writeDiff(empty, image, { signal: options.signal }),
      lease: options.lease,
      signal: options.signal,
    });
    const spec = toBinary(
      AnySchema,
      create(AnySchema, { typeUrl: options.spec?.typeUrl ?? "", value: options.spec?.value }),
    );
    const config = await writeCheckpointBlob(options.store, ns, {
      ref: `checkpoint-${ns}-${task.id}-${tmp.slice(tmp.lastIndexOf("/") + 1)}-spec`,
      mediaType: MEDIA_TYPE_CHECKPOINT_CONFIG,
      data: [spec],
      lease: options.lease,
      signal: options.signal,
    });
    return [tar, config];
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/**
 * Writes `data` as a blob of the namespace, held by `lease` from before its commit so that a garbage
 * collection in between cannot take it. Content already present is not an error.
 */
export async function writeCheckpointBlob(
  store: CheckpointStore,
  ns: string,
  options: {
    ref: string;
    mediaType: string;
    data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
    lease?: string;
    signal?: AbortSignal;
  },
): Promise<CheckpointDescriptor> {
  const { content, leases } = store;
  const lease = leases ? options.lease : undefined;
  if (lease !== undefined) await leases!.get(ns, lease);
  const w = await content.writer(ns, options.ref);
  let committed = false;
  let leased: string | undefined;
  try {
    if (w.status().offset > 0) await w.truncate(0);
    let size = 0;
    for await (const chunk of options.data) {
      options.signal?.throwIfAborted();
      await w.write(chunk);
      size += chunk.length;
    }
    const digest = w.digest();
    if (lease !== undefined) {
      await leases!.addResource(ns, lease, { type: "content", id: digest });
      leased = digest;
    }
    try {
      await w.commit(size, digest);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    committed = true;
    return { mediaType: options.mediaType, digest, size, annotations: {} };
  } catch (err) {
    if (!committed) {
      await w.close().catch(() => {});
      await content.abort(ns, options.ref).catch(() => {});
      if (leased !== undefined) {
        await leases!.deleteResource(ns, lease!, { type: "content", id: leased }).catch(() => {});
      }
    }
    throw err;
  }
}

/** Checks that a Create's checkpoint descriptor is a CRIU tar the namespace holds, before any work. */
export async function checkRestoreSource(
  content: ContentStore,
  ns: string,
  desc: Pick<CheckpointDescriptor, "mediaType" | "digest">,
): Promise<void> {
  if (desc.mediaType !== MEDIA_TYPE_CHECKPOINT) {
    throw invalidArgument(
      `Unsupported checkpoint type "${desc.mediaType}": a task restores from ${MEDIA_TYPE_CHECKPOINT}`,
    );
  }
  try {
    await content.info(ns, desc.digest);
  } catch (err) {
    if (isNotFound(err)) {
      throw notFound(
        `Checkpoint ${desc.digest} not found: the content store of namespace ${ns} does not hold it`,
      );
    }
    throw err;
  }
}

/** Unpacks the checkpoint tar `digest` into `dir` (containerd's archive.Apply). */
export async function unpackCheckpoint(
  content: ContentStore,
  ns: string,
  options: { digest: string; dir: string; signal?: AbortSignal },
): Promise<void> {
  const chunks = content.read(ns, options.digest, { signal: options.signal });
  try {
    await applyLayer(ReadableStream.from(chunks), options.dir, {
      mediaType: uncompressedLayerType,
      whiteouts: "native",
      signal: options.signal,
    });
  } catch (err) {
    if (options.signal?.aborted) throw err;
    if (err instanceof BerthError && (err.kind === "not_found" || err.kind === "canceled")) throw err;
    throw invalidArgument(
      `Checkpoint ${options.digest} cannot be unpacked, it is not a tar archive: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** Where a task being restored finds its image in its bundle. */
export function restoreDir(bundlePath: string): string {
  return `${bundlePath}/${RESTORE_DIR}`;
}

/** Drops the unpacked image of a restored task once it runs: nothing reads it any more. */
export async function releaseRestoreImage(bundlePath: string): Promise<void> {
  // Every Start comes here; a synchronous look costs microseconds where an async remove of nothing
  // queued on the blocking pool cost up to 1.5 ms.
  try {
    Deno.lstatSync(restoreDir(bundlePath));
  } catch {
    return;
  }
  await Deno.remove(restoreDir(bundlePath), { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
}
