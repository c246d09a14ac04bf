import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { failedPrecondition, invalidArgument } from "../base/errors.ts";
import type { EventPublisher } from "../core/events/mod.ts";
import type { Image } from "../core/images/mod.ts";
import { Resolver } from "../core/remotes/mod.ts";
import { hostPlatform, parsePlatform, platformMatcher } from "../oci/platforms.ts";
import {
  decryptionKeys,
  localBlobStore,
  pull,
  push,
  type TransferEvent,
  type TransferStatus,
  unpackStoredImage,
} from "../core/transfer/mod.ts";
import {
  type ProgressEvent,
  ProgressEventSchema,
  type RegistryOptions,
  Status,
  Transfer,
} from "../gen/berth/transfer/v1/transfer_pb.ts";
import { ImageCreateSchema, ImageUpdateSchema } from "../gen/events/image_pb.ts";
import { DescriptorSchema } from "../gen/types/descriptor_pb.ts";
import { type GrpcService } from "../plugins/registry.ts";
import { type TransferDeps } from "../plugins/transfer.ts";
import { namespaceOf } from "./context.ts";

/** How often progress is sent while a transfer runs. */
const PROGRESS_INTERVAL_MS = 100;

/** berth.transfer.v1.Transfer: pull and push run here, in the daemon. */
export function createTransferService(deps: TransferDeps, events: EventPublisher): GrpcService {
  return { register: (router) => router.service(Transfer, transferHandlers(deps, events)) };
}

function transferHandlers(deps: TransferDeps, events: EventPublisher): ServiceImpl<typeof Transfer> {
  const onImage = (ns: string, kind: "create" | "update", img: Image) => {
    const topic = kind === "create" ? "/images/create" : "/images/update";
    events.publish(ns, topic, kind === "create" ? ImageCreateSchema : ImageUpdateSchema, {
      name: img.name,
      labels: { ...img.labels },
    });
  };
  return {
    async *pull(req, ctx) {
      const ns = namespaceOf(ctx);
      if (req.reference === "") throw invalidArgument("Cannot pull: the request names no reference");
      const platforms = req.platforms.map(parsePlatform);
      const snapshotter = req.snapshotter || deps.defaultSnapshotter;
      if (req.unpack) {
        if (!deps.snapshotters.has(snapshotter)) {
          throw invalidArgument(`Cannot pull "${req.reference}": snapshotter ${snapshotter} is not loaded`);
        }
        if (!deps.unpacker) {
          throw failedPrecondition(
            `Cannot pull "${req.reference}" with unpack: this daemon has no unpacker; pull with --skip-unpack`,
          );
        }
      }
      using resolver = resolverFor(req.registry, deps);
      const queue = new ProgressQueue();
      const running = pull({ ...deps, onImage }, ns, req.reference, {
        resolver,
        platforms,
        allPlatforms: req.allPlatforms,
        maxConcurrentDownloads: req.maxConcurrentDownloads || deps.maxConcurrentDownloads,
        labels: req.labels,
        imageName: req.imageName,
        unpack: req.unpack
          ? { snapshotter, decryptionKeys: decryptionKeys(req.decryptionKeys, deps.decryptionKeysPaths) }
          : undefined,
        signal: ctx.signal,
        onProgress: (e) => queue.push(e),
      });
      running.then(() => queue.close(), () => queue.close());
      for await (const batch of queue.batches(PROGRESS_INTERVAL_MS)) yield { events: batch.map(eventToPb) };
      const result = await running;
      const t = result.image.target;
      yield {
        image: result.image.name,
        target: create(DescriptorSchema, {
          mediaType: t.mediaType,
          digest: t.digest,
          size: BigInt(t.size),
          annotations: { ...t.annotations },
        }),
        chainId: result.chainId ?? "",
      };
    },

    async *push(req, ctx) {
      const ns = namespaceOf(ctx);
      if (req.image === "") throw invalidArgument("Cannot push: the request names no image");
      using resolver = resolverFor(req.registry, deps);
      const queue = new ProgressQueue();
      const running = push(deps, ns, req.image, {
        resolver,
        reference: req.reference,
        platforms: req.platforms.map(parsePlatform),
        allPlatforms: req.allPlatforms,
        maxConcurrentUploads: req.maxConcurrentUploads || deps.maxConcurrentUploads,
        signal: ctx.signal,
        onProgress: (e) => queue.push(e),
      });
      running.then(() => queue.close(), () => queue.close());
      for await (const batch of queue.batches(PROGRESS_INTERVAL_MS)) yield { events: batch.map(eventToPb) };
      const root = await running;
      yield {
        image: req.reference || req.image,
        target: create(DescriptorSchema, {
          mediaType: root.mediaType,
          digest: root.digest,
          size: BigInt(root.size),
        }),
      };
    },

    async unpack(req, ctx) {
      const ns = namespaceOf(ctx);
      const snapshotter = req.snapshotter || deps.defaultSnapshotter;
      if (!deps.snapshotters.has(snapshotter)) {
        throw invalidArgument(`Cannot unpack "${req.image}": snapshotter ${snapshotter} is not loaded`);
      }
      if (!deps.unpacker) {
        throw failedPrecondition(`Cannot unpack "${req.image}": this daemon has no unpacker`);
      }
      const image = await deps.images.get(ns, req.image);
      const matcher = platformMatcher([req.platform ? parsePlatform(req.platform) : hostPlatform()]);
      const { chainId } = await unpackStoredImage(
        { blobs: localBlobStore(deps.content, ns), unpacker: deps.unpacker, leases: deps.leases },
        ns,
        image.target,
        {
          snapshotter,
          matcher,
          signal: ctx.signal,
          decryptionKeys: decryptionKeys(req.decryptionKeys, deps.decryptionKeysPaths),
        },
      );
      return { chainId };
    },
  };
}

function resolverFor(reg: RegistryOptions | undefined, deps: TransferDeps): Resolver {
  return new Resolver({
    plainHttp: reg?.plainHttp ?? false,
    skipVerify: reg?.skipVerify || undefined,
    credentials: reg?.user || undefined,
    configPath: reg?.hostsDir || deps.configPath,
  });
}

const STATUS: Record<TransferStatus, Status> = {
  resolving: Status.RESOLVING,
  waiting: Status.WAITING,
  downloading: Status.DOWNLOADING,
  uploading: Status.UPLOADING,
  unpacking: Status.UNPACKING,
  done: Status.DONE,
  exists: Status.EXISTS,
  error: Status.ERROR,
};

function eventToPb(e: TransferEvent): ProgressEvent {
  return create(ProgressEventSchema, {
    ref: e.ref,
    digest: e.digest,
    mediaType: e.mediaType,
    status: STATUS[e.status],
    offset: BigInt(e.offset),
    total: BigInt(e.total),
    resumedFrom: BigInt(e.resumedFrom ?? 0),
    error: e.error ?? "",
  });
}

/**
 * Progress events coalesced per ref and state (the latest byte count wins, a resume offset sticks), handed out in
 * batches at most every `interval`, so a fast download does not flood the stream.
 */
class ProgressQueue {
  #pending = new Map<string, TransferEvent>();
  readonly #resumed = new Map<string, number>();
  #closed = false;
  #wake: (() => void) | undefined;
  readonly #done = Promise.withResolvers<void>();

  push(e: TransferEvent): void {
    // Keyed by ref and status: repeated byte counts collapse, but every change of state is sent.
    const key = `${e.ref}\0${e.status}`;
    const resumedFrom = e.resumedFrom ?? this.#resumed.get(e.ref);
    if (e.resumedFrom !== undefined) this.#resumed.set(e.ref, e.resumedFrom);
    this.#pending.delete(key);
    this.#pending.set(key, resumedFrom !== undefined ? { ...e, resumedFrom } : e);
    this.#wake?.();
  }

  close(): void {
    this.#closed = true;
    this.#done.resolve();
    this.#wake?.();
  }

  async *batches(interval: number): AsyncGenerator<TransferEvent[]> {
    for (;;) {
      if (this.#pending.size === 0) {
        if (this.#closed) return;
        await new Promise<void>((r) => (this.#wake = r));
        this.#wake = undefined;
        continue;
      }
      const batch = [...this.#pending.values()];
      this.#pending = new Map();
      yield batch;
      if (this.#closed) continue;
      // Waits out the interval, but not past the end: the final state goes out at once.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([new Promise((r) => (timer = setTimeout(r, interval))), this.#done.promise]);
      clearTimeout(timer);
    }
  }
}
