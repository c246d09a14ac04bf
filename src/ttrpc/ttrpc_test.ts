import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { Task } from "../gen/runtime/task/v2/shim_pb.ts";
import { Events } from "../gen/services/ttrpc/events/v1/events_pb.ts";
import { Status } from "../gen/types/task/task_pb.ts";
import { notFound } from "../base/errors.ts";
import {
  Code,
  createTtrpcClient,
  MAX_MESSAGE_LENGTH,
  NAMESPACE_METADATA_KEY,
  TtrpcClient,
  TtrpcError,
  TtrpcServer,
} from "./mod.ts";
import { encodeFrame, FrameReader, MessageType } from "./frame.ts";
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  MAX_METADATA_SIZE,
  MAX_NAME_BYTES,
} from "./messages.ts";

/** Why each abandoned wait handler was aborted, by its request's id. */
const waitAborts = new Map<string, unknown>();
/** The signal each state handler was given, by its request's id. */
const stateSignals = new Map<string, AbortSignal>();

/** A server with a small Task service on a fresh socket; always closed and removed by the caller's finally. */
async function withServer(
  fn: (path: string, server: TtrpcServer) => Promise<void>,
  extra?: (server: TtrpcServer) => void,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-ttrpc-" });
  const server = new TtrpcServer();
  server.register(Task, {
    state(req, ctx) {
      stateSignals.set(req.id, ctx.signal);
      if (req.id === "missing") throw notFound(`Container "${req.id}" not created`);
      const ns = ctx.metadata[NAMESPACE_METADATA_KEY]?.[0] ?? "";
      return { id: req.id, bundle: `/bundles/${ns}/${req.id}`, pid: 42, status: Status.RUNNING };
    },
    async wait(req, ctx) {
      // Answers after a delay chosen by the caller, or when the call is abandoned.
      const ms = Number(req.execId || "0");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        ctx.signal.addEventListener("abort", () => {
          waitAborts.set(req.id, ctx.signal.reason);
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
      return { exitStatus: ms };
    },
    stats(req) {
      const size = Number(req.id);
      return { stats: create(AnySchema, { typeUrl: "x", value: new Uint8Array(size).fill(7) }) };
    },
  });
  extra?.(server);
  const path = `${dir}/ttrpc.sock`;
  server.listen(path);
  try {
    await fn(path, server);
  } finally {
    await server.close({ graceMs: 100 });
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("TtrpcClient.call() round-trips a unary Task.State call with metadata", async () => {
  await withServer(async (path) => {
    using client = await TtrpcClient.connect(`unix://${path}`, {
      metadata: { [NAMESPACE_METADATA_KEY]: "ns1" },
    });
    const task = createTtrpcClient(Task, client);
    const res = await task.state({ id: "c1" });
    assert.equal(res.id, "c1");
    assert.equal(res.bundle, "/bundles/ns1/c1");
    assert.equal(res.pid, 42);
    assert.equal(res.status, Status.RUNNING);
  });
});

Deno.test("TtrpcClient.call() maps a handler's not-found error to code 5 and back", async () => {
  await withServer(async (path) => {
    using client = await TtrpcClient.connect(path);
    const err = await client.call(Task, "state", { id: "missing" }).then(() => undefined, (e) => e);
    assert.ok(err instanceof TtrpcError);
    assert.equal(err.code, Code.notFound);
    assert.equal(err.kind, "not_found");
    assert.match(err.message, /Container "missing" not created/);
  });
});

Deno.test("TtrpcServer answers an unregistered method and an unknown service with Unimplemented (12)", async () => {
  await withServer(async (path) => {
    using client = await TtrpcClient.connect(path);
    const m = await client.call(Task, "pids", { id: "c1" }).then(() => undefined, (e) => e);
    assert.ok(m instanceof TtrpcError);
    assert.equal(m.code, Code.unimplemented);
    assert.equal(m.kind, "not_implemented");
    const s = await client.invoke("no.such.Service", "Foo", new Uint8Array()).then(() => undefined, (e) => e);
    assert.ok(s instanceof TtrpcError);
    assert.equal(s.code, 12);
    assert.match(s.message, /no\.such\.Service/);
  });
});

Deno.test("TtrpcClient multiplexes concurrent calls and matches answers that arrive out of order", async () => {
  await withServer(async (path) => {
    using client = await TtrpcClient.connect(path);
    const task = createTtrpcClient(Task, client);
    const delays = [120, 10, 80, 0, 40, 60, 5, 100];
    const results = await Promise.all([
      ...delays.map((ms) => task.wait({ id: "c", execId: String(ms) })),
      ...Array.from({ length: 50 }, (_, i) => task.state({ id: `c${i}` })),
    ]);
    assert.deepEqual(
      results.slice(0, delays.length).map((r) => "exitStatus" in r ? r.exitStatus : -1),
      delays,
    );
    assert.deepEqual(
      results.slice(delays.length).map((r) => "id" in r ? r.id : ""),
      delays.length ? Array.from({ length: 50 }, (_, i) => `c${i}`) : [],
    );
  });
});

Deno.test("TtrpcClient carries a request and a response near the 4 MiB limit", async () => {
  const forwarded: number[] = [];
  await withServer(async (path) => {
    using client = await TtrpcClient.connect(path);
    // Leave room for the envelope fields around the payload.
    const big = MAX_MESSAGE_LENGTH - 200;
    await client.call(Events, "forward", {
      envelope: { topic: "/t", namespace: "n", event: { typeUrl: "x", value: new Uint8Array(big) } },
    });
    assert.deepEqual(forwarded, [big]);
    const res = await client.call(Task, "stats", { id: String(big) });
    assert.equal(res.stats?.value.length, big);
    assert.equal(res.stats?.value[big - 1], 7);
  }, (server) =>
    server.register(Events, {
      forward(req) {
        forwarded.push(req.envelope?.event?.value.length ?? -1);
        return {};
      },
    }));
});

Deno.test("TtrpcClient rejects an oversized request locally and an oversized response with code 8", async () => {
  await withServer(async (path) => {
    using client = await TtrpcClient.connect(path);
    const tooBig = new Uint8Array(MAX_MESSAGE_LENGTH + 1);
    const local = await client.invoke("x.Y", "Z", tooBig).then(() => undefined, (e) => e);
    assert.ok(local instanceof TtrpcError);
    assert.equal(local.code, Code.resourceExhausted);
    const remote = await client.call(Task, "stats", { id: String(MAX_MESSAGE_LENGTH) }).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(remote instanceof TtrpcError);
    assert.equal(remote.code, Code.resourceExhausted);
    // The connection is still good afterwards.
    assert.equal((await client.call(Task, "state", { id: "ok" })).id, "ok");
  });
});

Deno.test("TtrpcServer skips an oversized frame, answers its stream with code 8 and keeps the connection", async () => {
  await withServer(async (path) => {
    const conn = await Deno.connect({ transport: "unix", path });
    try {
      const header = new Uint8Array(10);
      new DataView(header.buffer).setUint32(0, MAX_MESSAGE_LENGTH + 1);
      new DataView(header.buffer).setUint32(4, 1);
      header[8] = MessageType.request;
      await conn.write(header);
      const junk = new Uint8Array(MAX_MESSAGE_LENGTH + 1);
      for (let off = 0; off < junk.length;) off += await conn.write(junk.subarray(off));
      const ok = encodeRequest({
        service: "containerd.task.v2.Task",
        method: "Connect",
        payload: new Uint8Array(),
        timeoutNano: 0n,
        metadata: {},
      });
      await conn.write(encodeFrame(3, MessageType.request, 0, ok));
      const reader = new FrameReader(conn);
      const first = await reader.next();
      assert.equal(first?.streamId, 1);
      assert.equal(decodeResponse(first!.data!).status?.code, Code.resourceExhausted);
      const second = await reader.next();
      assert.equal(second?.streamId, 3);
      // Connect is not implemented by the test service: an answer, not a dropped connection.
      assert.equal(decodeResponse(second!.data!).status?.code, Code.unimplemented);
    } finally {
      conn.close();
    }
  });
});

Deno.test("TtrpcServer rejects even and reused stream ids with InvalidArgument", async () => {
  await withServer(async (path) => {
    const conn = await Deno.connect({ transport: "unix", path });
    try {
      const req = encodeRequest({
        service: "containerd.task.v2.Task",
        method: "State",
        payload: new Uint8Array(),
        timeoutNano: 0n,
        metadata: {},
      });
      await conn.write(encodeFrame(2, MessageType.request, 0, req));
      await conn.write(encodeFrame(5, MessageType.request, 0, req));
      await conn.write(encodeFrame(3, MessageType.request, 0, req));
      const reader = new FrameReader(conn);
      const got = new Map<number, number | undefined>();
      for (let i = 0; i < 3; i++) {
        const f = await reader.next();
        got.set(f!.streamId, decodeResponse(f!.data!).status?.code);
      }
      assert.equal(got.get(2), Code.invalidArgument);
      assert.equal(got.get(5), Code.ok);
      assert.equal(got.get(3), Code.invalidArgument);
    } finally {
      conn.close();
    }
  });
});

Deno.test("TtrpcClient call times out at its deadline and the server's handler sees the abort", async () => {
  await withServer(async (path) => {
    using client = await TtrpcClient.connect(path);
    const started = performance.now();
    const err = await client.call(Task, "wait", { id: "deadline", execId: "5000" }, { timeoutMs: 100 }).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(err instanceof TtrpcError);
    assert.equal(err.kind, "deadline_exceeded");
    assert.ok(performance.now() - started < 2000);
    // The server ends the handler at the deadline the request carried.
    for (let i = 0; i < 200 && !waitAborts.has("deadline"); i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal((waitAborts.get("deadline") as Error | undefined)?.name, "TimeoutError");
    // A call after a timed-out one still works on the same connection.
    assert.equal((await client.call(Task, "state", { id: "after" })).id, "after");
  });
});

Deno.test("a call that ended before its deadline is not aborted by it afterwards", async () => {
  await withServer(async (path) => {
    using client = await TtrpcClient.connect(path);
    assert.equal((await client.call(Task, "state", { id: "quick" }, { timeoutMs: 50 })).id, "quick");
    await new Promise((r) => setTimeout(r, 150));
    // The deadline's timer went with the call: nothing fires (and builds a TimeoutError) after it.
    assert.equal(stateSignals.get("quick")?.aborted, false);
  });
});

Deno.test("TtrpcClient call honours an AbortSignal", async () => {
  await withServer(async (path) => {
    using client = await TtrpcClient.connect(path);
    const ac = new AbortController();
    const p = client.call(Task, "wait", { id: "c", execId: "5000" }, { signal: ac.signal });
    ac.abort(new DOMException("stop", "AbortError"));
    await assert.rejects(p, (e: unknown) => e instanceof DOMException && e.name === "AbortError");
  });
});

Deno.test("TtrpcClient rejects pending and later calls with unavailable when the server goes away", async () => {
  await withServer(async (path, server) => {
    const client = await TtrpcClient.connect(path);
    try {
      const pending = client.call(Task, "wait", { id: "c", execId: "10000" }).then(() => undefined, (e) => e);
      await client.call(Task, "state", { id: "c" });
      await server.close({ graceMs: 0 });
      const err = await pending;
      assert.ok(err instanceof TtrpcError);
      assert.equal(err.kind, "unavailable");
      await client.closed;
      const later = await client.call(Task, "state", { id: "c" }).then(() => undefined, (e) => e);
      assert.ok(later instanceof TtrpcError);
      assert.equal(later.code, Code.unavailable);
    } finally {
      client.close();
    }
  });
});

Deno.test("TtrpcClient.connect() to a missing socket fails with not found", async () => {
  const err = await TtrpcClient.connect("/nonexistent/berth/ttrpc.sock").then(() => undefined, (e) => e);
  assert.ok(err instanceof TtrpcError);
  assert.equal(err.kind, "not_found");
});

Deno.test("TtrpcServer.register() refuses a service registered twice", () => {
  const server = new TtrpcServer();
  server.register(Task, {});
  assert.throws(() => server.register(Task, {}), /already registered/);
});

Deno.test("decodeRequest() takes metadata keys named like Object.prototype members as ordinary keys", () => {
  const metadata: Record<string, string[]> = Object.create(null);
  for (const [key, value] of [["__proto__", "a"], ["constructor", "b"], ["toString", "c"]]) {
    metadata[key!] = [value!];
  }
  const req = decodeRequest(
    encodeRequest({ service: "s", method: "m", payload: new Uint8Array(), timeoutNano: 0n, metadata }),
  );
  assert.deepEqual(Object.entries(req.metadata), [["__proto__", ["a"]], ["constructor", ["b"]], ["toString", [
    "c",
  ]]]);
});

Deno.test("decodeRequest() refuses metadata past MAX_METADATA_SIZE with ResourceExhausted and cuts long names", () => {
  const call = { service: "s", method: "m", payload: new Uint8Array(), timeoutNano: 0n };
  const many = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, ["v"]]));
  const err = (() => {
    try {
      decodeRequest(encodeRequest({ ...call, metadata: many }));
    } catch (e) {
      return e;
    }
  })();
  assert.ok(err instanceof TtrpcError && err.code === Code.resourceExhausted, String(err));
  const value = "x".repeat(MAX_METADATA_SIZE);
  assert.throws(() => decodeRequest(encodeRequest({ ...call, metadata: { k: [value] } })), TtrpcError);
  const req = decodeRequest(encodeRequest({ ...call, service: "s".repeat(1 << 20), metadata: {} }));
  assert.equal(req.service, `${"s".repeat(MAX_NAME_BYTES)}…`);
});

Deno.test("TtrpcServer answers a 4 MiB unknown service name with a short Unimplemented and keeps the connection", async () => {
  await withServer(async (path) => {
    const conn = await Deno.connect({ transport: "unix", path });
    try {
      const body = encodeRequest({
        service: "x".repeat(MAX_MESSAGE_LENGTH - 64),
        method: "M",
        payload: new Uint8Array(),
        timeoutNano: 0n,
        metadata: {},
      });
      await writeAll(conn, encodeFrame(1, MessageType.request, 0, body));
      await writeAll(
        conn,
        encodeFrame(3, MessageType.request, 0, encodeRequest({ ...probeCall, metadata: {} })),
      );
      const reader = new FrameReader(conn);
      const first = await reader.next();
      const status = decodeResponse(first!.data!).status!;
      assert.equal(status.code, Code.unimplemented);
      assert.ok(status.message.length < 8192, `A status of ${status.message.length} characters`);
      assert.equal((await reader.next())?.streamId, 3, "the connection still answers");
    } finally {
      conn.close();
    }
  });
});

const probeCall = { service: Task.typeName, method: "State", payload: new Uint8Array(), timeoutNano: 0n };

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}
