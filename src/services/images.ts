import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument } from "../base/errors.ts";
import type { EventPublisher } from "../core/events/mod.ts";
import type { Image, ImageInit, ImageStore } from "../core/images/mod.ts";
import { ImageCreateSchema, ImageDeleteSchema, ImageUpdateSchema } from "../gen/events/image_pb.ts";
import { type Image as ImagePb, Images, ImageSchema } from "../gen/services/images/v1/images_pb.ts";
import { type Descriptor as DescriptorPb, DescriptorSchema } from "../gen/types/descriptor_pb.ts";
import { type GrpcService } from "../plugins/registry.ts";
import { namespaceOf } from "./context.ts";
import type { GcScheduler } from "./leases.ts";
import { timestampFromNanos } from "../base/timestamps.ts";

export interface ImagesServiceDeps {
  readonly events: EventPublisher;
  /** Runs a collection for `Delete` with `sync`; without it such deletes return at once. */
  readonly gc?: GcScheduler;
  /** Told after an image record is created or updated (an unpack of it often comes next). */
  readonly onRecorded?: () => void;
}

/** containerd.services.images.v1.Images over an ImageStore, publishing containerd's image events. */
export function createImagesService(store: ImageStore, deps: ImagesServiceDeps): GrpcService {
  return { register: (router) => router.service(Images, imagesHandlers(store, deps)) };
}

function imagesHandlers(store: ImageStore, deps: ImagesServiceDeps): ServiceImpl<typeof Images> {
  return {
    async get(req, ctx) {
      return { image: imageToPb(await store.get(namespaceOf(ctx), req.name)) };
    },
    async list(req, ctx) {
      return { images: (await store.list(namespaceOf(ctx), { filters: req.filters })).map(imageToPb) };
    },
    async create(req, ctx) {
      const ns = namespaceOf(ctx);
      const img = await store.create(ns, imageFromPb(req.image, "create"));
      deps.events.publish(ns, "/images/create", ImageCreateSchema, {
        name: img.name,
        labels: { ...img.labels },
      });
      deps.onRecorded?.();
      return { image: imageToPb(img) };
    },
    async update(req, ctx) {
      const ns = namespaceOf(ctx);
      const img = await store.update(ns, imageFromPb(req.image, "update"), {
        fieldpaths: req.updateMask?.paths ?? [],
      });
      deps.events.publish(ns, "/images/update", ImageUpdateSchema, {
        name: img.name,
        labels: { ...img.labels },
      });
      deps.onRecorded?.();
      return { image: imageToPb(img) };
    },
    async delete(req, ctx) {
      const ns = namespaceOf(ctx);
      await store.delete(ns, req.name, { target: req.target?.digest });
      deps.events.publish(ns, "/images/delete", ImageDeleteSchema, { name: req.name });
      if (req.sync) await deps.gc?.scheduleAndWait(ctx.signal);
      return {};
    },
  };
}

function imageFromPb(img: ImagePb | undefined, verb: string): ImageInit {
  if (img === undefined) throw invalidArgument(`Cannot ${verb} an image: the request has none`);
  const t = img.target;
  return {
    name: img.name,
    labels: img.labels,
    target: {
      mediaType: t?.mediaType ?? "",
      digest: t?.digest ?? "",
      size: Number(t?.size ?? 0n),
      annotations: t?.annotations ?? {},
    },
  };
}

function imageToPb(img: Image): ImagePb {
  return create(ImageSchema, {
    name: img.name,
    labels: { ...img.labels },
    target: descriptorToPb(img),
    createdAt: timestampFromNanos(img.createdAt),
    updatedAt: timestampFromNanos(img.updatedAt),
  });
}

function descriptorToPb(img: Image): DescriptorPb {
  const t = img.target;
  return create(DescriptorSchema, {
    mediaType: t.mediaType,
    digest: t.digest,
    size: BigInt(t.size),
    annotations: { ...t.annotations },
  });
}
