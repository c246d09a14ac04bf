import assert from "node:assert/strict";
import { join } from "node:path";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { realtimeNanos } from "../../ffi/clock.ts";
import { ContentStore } from "../core/content/mod.ts";
import { digestOf } from "../oci/digest_of.ts";
import type { EventPublisher } from "../core/events/mod.ts";
import { LeaseManager } from "../core/leases/mod.ts";
import { MetadataDB } from "../core/metadata/db.ts";
import { NamespaceStore } from "../core/namespaces/mod.ts";
import {
  Content,
  WriteAction,
  type WriteContentRequestSchema,
} from "../gen/services/content/v1/content_pb.ts";
import { createContentService } from "./content.ts";
import { errorInterceptor } from "./errors.ts";

type Published = { ns: string; topic: string; event: unknown };

function recorder(): EventPublisher & { events: Published[] } {
  const events: Published[] = [];
  return {
    events,
    publish<D extends DescMessage>(ns: string, topic: string, _schema: D, event: MessageInitShape<D>) {
      events.push({ ns, topic, event });
    },
  };
}

async function withService(
  fn: (ctx: {
    client: ReturnType<typeof createClient<typeof Content>>;
    store: ContentStore;
    leases: LeaseManager;
    events: Published[];
    db: MetadataDB;
  }) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "berth-content-svc-" });
  const db = new MetadataDB(join(dir, "meta.db"));
  try {
    const store = new ContentStore(join(dir, "content"), db, { lockWaitMs: 100 });
    const leases = new LeaseManager(db);
    const rec = recorder();
    const svc = createContentService(store, { events: rec, leases });
    const transport = createRouterTransport((r) => svc.register(r), {
      router: { interceptors: [errorInterceptor] },
    });
    await fn({ client: createClient(Content, transport), store, leases, events: rec.events, db });
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const H = { headers: { "containerd-namespace": "default" } };

async function* msgs(...reqs: MessageInitShape<typeof WriteContentRequestSchema>[]) {
  for (const r of reqs) yield r;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function code(p: Promise<unknown>): Promise<Code> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err).code;
  }
  throw new Error("expected the call to fail");
}

const bytes = (n: number, seed = 7) => Uint8Array.from({ length: n }, (_, i) => (i * seed + 3) & 0xff);

Deno.test("Content.Write STAT, WRITE, COMMIT stores a blob that Info and Read return", async () => {
  await withService(async ({ client, events }) => {
    const data = bytes(3 * 1024 * 1024 + 5);
    const d = digestOf(data);
    const res = await collect(client.write(
      msgs(
        { action: WriteAction.STAT, ref: "r1", total: BigInt(data.length), expected: d },
        { action: WriteAction.WRITE, ref: "r1", offset: 0n, data: data.subarray(0, 1000) },
        {
          action: WriteAction.COMMIT,
          ref: "r1",
          offset: 1000n,
          data: data.subarray(1000),
          total: BigInt(data.length),
          expected: d,
          labels: { l: "v" },
        },
      ),
      H,
    ));
    assert.deepEqual(res.map((r) => [r.action, Number(r.offset)]), [
      [WriteAction.STAT, 0],
      [WriteAction.WRITE, 1000],
      [WriteAction.COMMIT, data.length],
    ]);
    assert.equal(res[2]!.digest, d);
    const info = (await client.info({ digest: d }, H)).info!;
    assert.equal(info.size, BigInt(data.length));
    assert.deepEqual(info.labels, { l: "v" });
    const chunks = await collect(client.read({ digest: d }, H));
    assert.ok(chunks.every((c) => c.data.length <= 1 << 20));
    assert.deepEqual(chunks.map((c) => Number(c.offset)), [0, 1 << 20, 2 << 20, 3 << 20]);
    const joined = new Uint8Array(data.length);
    for (const c of chunks) joined.set(c.data, Number(c.offset));
    assert.deepEqual(joined, data);
    const part = await collect(client.read({ digest: d, offset: 10n, size: 5n }, H));
    assert.deepEqual(part[0]!.data, data.subarray(10, 15));
    assert.equal(
      await code(collect(client.read({ digest: d, offset: BigInt(data.length + 1) }, H))),
      Code.OutOfRange,
    );
    assert.deepEqual(events.map((e) => e.topic), ["/content/create"]);
  });
});

Deno.test("Content.Write rejects a wrong digest with FailedPrecondition and a bad offset with OutOfRange", async () => {
  await withService(async ({ client, store }) => {
    const data = bytes(100);
    const wrong = digestOf(bytes(100, 9));
    const bad = client.write(msgs({ action: WriteAction.COMMIT, ref: "r", data, expected: wrong }), H);
    assert.equal(await code(collect(bad)), Code.FailedPrecondition);
    assert.deepEqual(await store.walk("default"), []);
    // The ingest kept its 100 bytes: a write at another offset is refused.
    const st = (await client.status({ ref: "r" }, H)).status!;
    assert.equal(st.offset, 100n);
    const skip = client.write(msgs({ action: WriteAction.WRITE, ref: "r", offset: 50n, data }), H);
    assert.equal(await code(collect(skip)), Code.OutOfRange);
    // Offset 0 restarts the ingest.
    const ok = await collect(
      client.write(
        msgs({ action: WriteAction.COMMIT, ref: "r", offset: 0n, data, expected: digestOf(data) }),
        H,
      ),
    );
    assert.equal(ok[0]!.offset, 100n);
  });
});

Deno.test("Content.Write reports AlreadyExists and Unavailable for a locked ref", async () => {
  await withService(async ({ client, store }) => {
    const data = bytes(10);
    const d = digestOf(data);
    await collect(client.write(msgs({ action: WriteAction.COMMIT, ref: "a", data, expected: d }), H));
    const again = client.write(msgs({ action: WriteAction.STAT, ref: "b", expected: d }), H);
    assert.equal(await code(collect(again)), Code.AlreadyExists);
    const held = await store.writer("default", "busy");
    try {
      assert.equal(
        await code(collect(client.write(msgs({ action: WriteAction.STAT, ref: "busy" }), H))),
        Code.Unavailable,
      );
    } finally {
      await held.close();
    }
  });
});

Deno.test("Content.Write under a lease holds an expected blob it answers AlreadyExists for, as containerd does", async () => {
  await withService(async ({ client, leases }) => {
    const data = bytes(10);
    const d = digestOf(data);
    await collect(client.write(msgs({ action: WriteAction.COMMIT, ref: "a", data, expected: d }), H));
    await leases.create("default", { id: "pull" });
    const LH = { headers: { "containerd-namespace": "default", "containerd-lease": "pull" } };
    // A client pulling an image whose blob is already here: without the hold, a collection could take
    // the blob before the image record names it.
    const again = client.write(msgs({ action: WriteAction.STAT, ref: "b", expected: d }), LH);
    assert.equal(await code(collect(again)), Code.AlreadyExists);
    assert.deepEqual(await leases.listResources("default", "pull"), [{ id: d, type: "content" }]);
  });
});

Deno.test("Content List, Update, ListStatuses, Abort and Delete follow containerd", async () => {
  await withService(async ({ client, events, leases }) => {
    await leases.create("default", { id: "l1" });
    const LH = { headers: { "containerd-namespace": "default", "containerd-lease": "l1" } };
    const digests: string[] = [];
    for (let i = 0; i < 120; i++) {
      const data = bytes(8, i * 2 + 1);
      digests.push(digestOf(data));
      await collect(client.write(msgs({ action: WriteAction.COMMIT, ref: `r${i}`, data }), i === 0 ? LH : H));
    }
    const batches = await collect(client.list({}, H));
    assert.deepEqual(batches.map((b) => b.info.length), [100, 20]);
    const updated = await client.update({
      info: { digest: digests[0]!, labels: { a: "1" } },
      updateMask: { paths: ["labels.a"] },
    }, H);
    assert.deepEqual(updated.info!.labels, { a: "1" });
    const filtered = await collect(client.list({ filters: ["labels.a==1"] }, H));
    assert.deepEqual(filtered.flatMap((b) => b.info.map((i) => i.digest)), [digests[0]]);
    assert.deepEqual(await leases.listResources("default", "l1"), [{ id: digests[0], type: "content" }]);

    await collect(client.write(msgs({ action: WriteAction.WRITE, ref: "pending", data: bytes(3) }), H));
    const sts = await client.listStatuses({ filters: ["ref==pending"] }, H);
    assert.deepEqual(sts.statuses.map((s) => [s.ref, Number(s.offset)]), [["pending", 3]]);
    await client.abort({ ref: "pending" }, H);
    assert.equal(await code(client.status({ ref: "pending" }, H)), Code.NotFound);

    await client.delete({ digest: digests[1]! }, H);
    assert.equal(await code(client.info({ digest: digests[1]! }, H)), Code.NotFound);
    assert.equal(await code(client.delete({ digest: digests[1]! }, H)), Code.NotFound);
    assert.equal(await code(client.info({ digest: "nope" }, H)), Code.InvalidArgument);
    assert.deepEqual(events.filter((e) => e.topic === "/content/delete"), [
      { ns: "default", topic: "/content/delete", event: { digest: digests[1] } },
    ]);
    assert.equal(await code(client.info({ digest: digests[0]! })), Code.FailedPrecondition);
    assert.equal(
      await code(client.info({ digest: digests[0]! }, { headers: { "containerd-namespace": "other" } })),
      Code.NotFound,
    );
  });
});

/** A request stream the test feeds and ends by hand, as a client that keeps its stream open. */
function requestStream() {
  const queue: MessageInitShape<typeof WriteContentRequestSchema>[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  async function* iterate() {
    for (;;) {
      while (queue.length > 0) yield queue.shift()!;
      if (ended) return;
      await new Promise<void>((r) => wake = r);
    }
  }
  return {
    requests: iterate(),
    send(r: MessageInitShape<typeof WriteContentRequestSchema>) {
      queue.push(r);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
  };
}

const nanos = (t: Timestamp | undefined) => t!.seconds * 1_000_000_000n + BigInt(t!.nanos);

Deno.test("Content.Write waits for the stream that holds its ref to end, then resumes from its offset", async () => {
  await withService(async ({ client }) => {
    const data = bytes(100);
    const d = digestOf(data);
    const first = requestStream();
    const firstReplies = client.write(first.requests, H)[Symbol.asyncIterator]();
    first.send({ action: WriteAction.STAT, ref: "r", total: 100n, expected: d });
    await firstReplies.next();
    first.send({ action: WriteAction.WRITE, ref: "r", offset: 0n, data: data.subarray(0, 40) });
    assert.equal((await firstReplies.next()).value!.offset, 40n);
    // The second stream opens the ref while the first still holds it; the first then ends.
    const second = collect(
      client.write(msgs({ action: WriteAction.STAT, ref: "r", total: 100n, expected: d }), H),
    )
      .then((replies) => ({ replies }), (error: unknown) => ({ error }));
    await new Promise((r) => setTimeout(r, 10));
    first.end();
    assert.equal((await firstReplies.next()).done, true);
    const result = await second;
    assert.ok("replies" in result, `the second stream failed: ${"error" in result ? result.error : ""}`);
    const [stat] = result.replies;
    assert.equal(stat!.offset, 40n);
    assert.equal(stat!.digest, digestOf(data.subarray(0, 40)));
    const done = await collect(client.write(
      msgs({
        action: WriteAction.COMMIT,
        ref: "r",
        offset: 40n,
        data: data.subarray(40),
        total: 100n,
        expected: d,
      }),
      H,
    ));
    assert.equal(done[0]!.digest, d);
  });
});

Deno.test("Content Write, Status, ListStatuses and Info carry times to the nanosecond", async () => {
  await withService(async ({ client }) => {
    const data = bytes(64);
    const d = digestOf(data);
    const stream = requestStream();
    const replies = client.write(stream.requests, H)[Symbol.asyncIterator]();
    const t0 = realtimeNanos();
    stream.send({ action: WriteAction.STAT, ref: "r", total: 64n });
    const opened = (await replies.next()).value!;
    const t1 = realtimeNanos();
    assert.ok(t0 <= nanos(opened.startedAt) && nanos(opened.startedAt) <= t1);
    assert.equal(nanos(opened.updatedAt), nanos(opened.startedAt));
    const t2 = realtimeNanos();
    stream.send({ action: WriteAction.WRITE, ref: "r", offset: 0n, data: data.subarray(0, 10) });
    await replies.next();
    const t3 = realtimeNanos();
    stream.send({ action: WriteAction.STAT, ref: "r" });
    const stat = (await replies.next()).value!;
    assert.ok(t2 <= nanos(stat.updatedAt) && nanos(stat.updatedAt) <= t3);
    const status = (await client.status({ ref: "r" }, H)).status!;
    assert.deepEqual([nanos(status.startedAt), nanos(status.updatedAt)], [
      nanos(opened.startedAt),
      nanos(stat.updatedAt),
    ]);
    const listed = (await client.listStatuses({}, H)).statuses;
    assert.deepEqual(listed.map((s) => nanos(s.updatedAt)), [nanos(stat.updatedAt)]);
    const t4 = realtimeNanos();
    stream.send({ action: WriteAction.COMMIT, ref: "r", offset: 10n, data: data.subarray(10), expected: d });
    await replies.next();
    const t5 = realtimeNanos();
    stream.end();
    const info = (await client.info({ digest: d }, H)).info!;
    assert.ok(t4 <= nanos(info.createdAt) && nanos(info.createdAt) <= t5);
    assert.equal(nanos(info.updatedAt), nanos(info.createdAt));
    const times = [opened.startedAt, stat.updatedAt, info.createdAt].map(nanos);
    assert.ok(times.some((t) => t % 1_000_000n !== 0n), "every time falls on a whole millisecond");
  });
});

Deno.test("Content.Write resumes an ingest under a different expected digest and commits against it", async () => {
  await withService(async ({ client, store }) => {
    const a = bytes(100, 3);
    const b = bytes(100, 5);
    await collect(client.write(
      msgs(
        { action: WriteAction.STAT, ref: "r", total: 100n, expected: digestOf(a) },
        { action: WriteAction.WRITE, ref: "r", offset: 0n, data: a.subarray(0, 30) },
      ),
      H,
    ));
    const wrong = client.write(
      msgs(
        { action: WriteAction.STAT, ref: "r", total: 100n, expected: digestOf(b) },
        { action: WriteAction.COMMIT, ref: "r", offset: 30n, data: a.subarray(30), total: 100n },
      ),
      H,
    );
    assert.equal(await code(collect(wrong)), Code.FailedPrecondition);
    const st = (await client.status({ ref: "r" }, H)).status!;
    assert.deepEqual([st.offset, st.total, st.expected], [100n, 100n, digestOf(b)]);
    const ok = await collect(client.write(
      msgs(
        { action: WriteAction.STAT, ref: "r", total: 100n, expected: digestOf(b) },
        { action: WriteAction.COMMIT, ref: "r", offset: 0n, data: b, total: 100n, expected: digestOf(b) },
      ),
      H,
    ));
    assert.equal(ok[1]!.digest, digestOf(b));
    assert.deepEqual((await store.walk("default")).map((i) => i.digest), [digestOf(b)]);
  });
});

Deno.test("Content.Write in a namespace that does not exist yet creates it, and Abort empties it", async () => {
  await withService(async ({ client, db }) => {
    const namespaces = new NamespaceStore(db);
    const fresh = { headers: { "containerd-namespace": "fresh" } };
    await collect(client.write(msgs({ action: WriteAction.WRITE, ref: "r", data: bytes(5) }), fresh));
    assert.deepEqual(namespaces.list().map((n) => n.name), ["fresh"]);
    assert.throws(() => namespaces.delete("fresh"), /must be empty/);
    assert.deepEqual((await client.listStatuses({}, fresh)).statuses.map((s) => s.ref), ["r"]);
    await client.abort({ ref: "r" }, fresh);
    assert.deepEqual(namespaces.list(), []);
  });
});
