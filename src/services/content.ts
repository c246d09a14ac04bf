import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { ContentStore, Info, Status } from "../core/content/mod.ts";
import { parseDigest } from "../oci/digest.ts";
import { alreadyExists, invalidArgument, isNotFound } from "../base/errors.ts";
import type { EventPublisher } from "../core/events/mod.ts";
import type { LeaseManager } from "../core/leases/mod.ts";
import { ContentCreateSchema, ContentDeleteSchema } from "../gen/events/content_pb.ts";
import {
  Content,
  type Info as InfoPb,
  InfoSchema,
  type Status as StatusPb,
  StatusSchema,
  WriteAction,
  type WriteContentRequest,
  type WriteContentResponse,
  WriteContentResponseSchema,
} from "../gen/services/content/v1/content_pb.ts";
import { type GrpcService } from "../plugins/registry.ts";
import { leaseOf, namespaceOf } from "./context.ts";
import { timestampFromNanos } from "../base/timestamps.ts";

const LIST_BATCH = 100;
const READ_CHUNK = 1 << 20;

export interface ContentServiceDeps {
  readonly events: EventPublisher;
  /** When present, objects written under a `containerd-lease` header are added to that lease. */
  readonly leases?: LeaseManager;
}

/** containerd.services.content.v1.Content over a ContentStore. */
export function createContentService(store: ContentStore, deps: ContentServiceDeps): GrpcService {
  return { register: (router) => router.service(Content, contentHandlers(store, deps)) };
}

function contentHandlers(store: ContentStore, deps: ContentServiceDeps): ServiceImpl<typeof Content> {
  const lease = async (ctx: HandlerContext, ns: string, type: string, id: string, remove = false) => {
    const l = leaseOf(ctx);
    if (l === undefined || deps.leases === undefined) return;
    if (remove) await deps.leases.deleteResource(ns, l, { id, type }).catch(() => {});
    else await deps.leases.addResource(ns, l, { id, type });
  };

  return {
    async info(req, ctx) {
      return { info: infoToPb(await store.info(namespaceOf(ctx), checkedDigest(req.digest))) };
    },

    async update(req, ctx) {
      if (!req.info) throw invalidArgument("Cannot update content: the request has no info");
      const info = await store.update(
        namespaceOf(ctx),
        { digest: checkedDigest(req.info.digest), labels: req.info.labels },
        { fieldpaths: req.updateMask?.paths ?? [] },
      );
      return { info: infoToPb(info) };
    },

    async *list(req, ctx) {
      const infos = await store.walk(namespaceOf(ctx), { filters: req.filters });
      for (let i = 0; i < infos.length; i += LIST_BATCH) {
        yield { info: infos.slice(i, i + LIST_BATCH).map(infoToPb) };
      }
    },

    async delete(req, ctx) {
      const ns = namespaceOf(ctx);
      const digest = checkedDigest(req.digest);
      await store.delete(ns, digest);
      deps.events.publish(ns, "/content/delete", ContentDeleteSchema, { digest });
      return {};
    },

    async *read(req, ctx) {
      const ns = namespaceOf(ctx);
      const digest = checkedDigest(req.digest);
      const info = await store.info(ns, digest);
      const offset = req.offset < 0n ? 0 : Number(req.offset);
      if (offset > info.size) {
        throw new ConnectError(`Read past object length ${info.size} bytes`, Code.OutOfRange);
      }
      let at = offset;
      const stream = store.read(ns, digest, {
        offset,
        size: Number(req.size),
        chunkSize: READ_CHUNK,
        signal: ctx.signal,
      });
      for await (const data of stream) {
        yield { offset: BigInt(at), data };
        at += data.length;
      }
    },

    async status(req, ctx) {
      return { status: statusToPb(await store.status(namespaceOf(ctx), req.ref)) };
    },

    async listStatuses(req, ctx) {
      const statuses = await store.listStatuses(namespaceOf(ctx), { filters: req.filters });
      return { statuses: statuses.map(statusToPb) };
    },

    async abort(req, ctx) {
      const ns = namespaceOf(ctx);
      await store.abort(ns, req.ref);
      await lease(ctx, ns, "ingests", req.ref, true);
      return {};
    },

    // The protocol of containerd's contentserver: the first message names the ref and opens (or
    // resumes) its writer; every message then gets one response carrying the current offset.
    async *write(requests, ctx) {
      const ns = namespaceOf(ctx);
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done) return;
      let req: WriteContentRequest = first.value;
      const ref = req.ref;
      if (ref === "") throw invalidArgument("First write message must have a reference");
      let total = Number(req.total);
      let expected = req.expected;
      if (expected !== "") parseDigest(expected);
      // As containerd's metadata store does, a blob the client expects joins its lease before the
      // writer looks for it: one found present (AlreadyExists) stays while the client relies on it.
      if (expected !== "") await lease(ctx, ns, "content", expected);
      // Leased: the lease below holds the ingest, and collection aborts it once no lease does.
      const leased = leaseOf(ctx) !== undefined && deps.leases !== undefined;
      const wr = await store.writer(ns, ref, { total, expected, leased });
      try {
        await lease(ctx, ns, "ingests", ref);
        for (;;) {
          const ws = wr.status();
          const msg: WriteContentResponse = create(WriteContentResponseSchema, {
            action: req.action,
            offset: BigInt(ws.offset),
          });
          if (req.expected !== "") {
            expected = req.expected;
            await lease(ctx, ns, "content", checkedDigest(expected));
            if (await exists(store, ns, expected)) {
              await wr.close();
              await store.abort(ns, ref).catch(() => {});
              throw alreadyExists(`Blob with expected digest ${expected} exists`);
            }
          }
          if (req.total > 0n) total = Number(req.total);

          if (req.action === WriteAction.STAT) {
            msg.digest = wr.digest();
            msg.startedAt = timestampFromNanos(ws.startedAt);
            msg.updatedAt = timestampFromNanos(ws.updatedAt);
            msg.total = BigInt(total);
          } else if (req.action === WriteAction.WRITE || req.action === WriteAction.COMMIT) {
            if (req.offset > 0n && Number(req.offset) !== ws.offset) {
              throw new ConnectError(
                `Write at ${req.offset} must occur at the current offset ${ws.offset} of ref ${ref}`,
                Code.OutOfRange,
              );
            }
            if (req.offset === 0n && ws.offset > 0) {
              await wr.truncate(0);
              msg.offset = 0n;
            }
            if (req.data.length > 0) {
              await wr.write(req.data);
              msg.offset += BigInt(req.data.length);
            }
            if (req.action === WriteAction.COMMIT) {
              // Held before it exists, so no collection finds it committed and unreferenced.
              await lease(ctx, ns, "content", expected || wr.digest());
              const info = await wr.commit(total, expected, { labels: req.labels });
              await lease(ctx, ns, "ingests", ref, true);
              deps.events.publish(ns, "/content/create", ContentCreateSchema, {
                digest: info.digest,
                size: BigInt(info.size),
              });
            }
            msg.digest = wr.digest();
          } else {
            throw invalidArgument(`Unknown write action ${req.action} for ref ${ref}`);
          }
          yield msg;
          if (req.action === WriteAction.COMMIT) return;
          const next = await it.next();
          if (next.done) return;
          req = next.value;
        }
      } finally {
        await wr.close();
      }
    },
  };
}

async function exists(store: ContentStore, ns: string, digest: string): Promise<boolean> {
  try {
    await store.info(ns, digest);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

function checkedDigest(digest: string): string {
  try {
    parseDigest(digest);
  } catch {
    throw invalidArgument(`Digest ${JSON.stringify(digest)} failed validation`);
  }
  return digest;
}

function infoToPb(info: Info): InfoPb {
  return create(InfoSchema, {
    digest: info.digest,
    size: BigInt(info.size),
    createdAt: timestampFromNanos(info.createdAt),
    updatedAt: timestampFromNanos(info.updatedAt),
    labels: { ...info.labels },
  });
}

function statusToPb(st: Status): StatusPb {
  return create(StatusSchema, {
    ref: st.ref,
    offset: BigInt(st.offset),
    total: BigInt(st.total),
    expected: st.expected,
    startedAt: timestampFromNanos(st.startedAt),
    updatedAt: timestampFromNanos(st.updatedAt),
  });
}
