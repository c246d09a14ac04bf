import assert from "node:assert/strict";
import { Code, ConnectError, type ConnectRouter, createClient, type Interceptor } from "@connectrpc/connect";
import { ApiServer } from "../daemon/server.ts";
import { silentLogger } from "../daemon/log.ts";
import { H2ClientConnection } from "../h2/client/mod.ts";
import { Content } from "../gen/services/content/v1/content_pb.ts";
import { Containers } from "../gen/services/containers/v1/containers_pb.ts";
import { Events } from "../gen/services/events/v1/events_pb.ts";
import { Tasks } from "../gen/services/tasks/v1/tasks_pb.ts";
import { Version } from "../gen/services/version/v1/version_pb.ts";
import { GrpcTransport } from "./grpc_transport.ts";

const MiB = 1 << 20;

/** Byte i of a test payload: a pattern that shows reordered or dropped frames. */
const pattern = (offset: number, n: number) => {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = ((offset + i) * 7 + ((offset + i) >> 12)) & 0xff;
  return out;
};

async function* writeRequests(size: number, chunk: number) {
  for (let off = 0; off < size; off += chunk) {
    yield { action: 1, ref: "r", offset: BigInt(off), data: pattern(off, Math.min(chunk, size - off)) };
  }
  yield { action: 2, ref: "r" };
}

interface Env {
  server: ApiServer;
  transport: GrpcTransport;
  address: string;
  connects: number;
  /** Set when a server handler saw its call aborted. */
  aborted: Set<string>;
  close(): Promise<void>;
}

function routes(env: { aborted: Set<string> }) {
  return (router: ConnectRouter) => {
    router.service(Version, {
      version: (_req, ctx) => ({ version: "1.2.3", revision: ctx.requestHeader.get("x-test") ?? "" }),
    });
    router.service(Containers, {
      get: (req) => {
        throw new ConnectError(`container "${req.id}" not found: 100% gone ✓`, Code.NotFound, {
          "x-why": "test",
        });
      },
    });
    router.service(Content, {
      async *read(req) {
        const chunk = 256 << 10;
        for (let off = 0; off < Number(req.size); off += chunk) {
          const n = Math.min(chunk, Number(req.size) - off);
          yield { offset: BigInt(off), data: pattern(off, n) };
        }
      },
      async *write(reqs) {
        let total = 0;
        let ok = true;
        for await (const r of reqs) {
          const want = pattern(total, r.data.length);
          ok &&= r.data.every((b, i) => b === want[i]);
          total += r.data.length;
          if (r.action === 2 /* COMMIT */) break;
        }
        yield { offset: BigInt(total), digest: ok ? "intact" : "corrupt" };
      },
    });
    router.service(Tasks, {
      wait: (_req, ctx) =>
        new Promise((_resolve, reject) => {
          ctx.signal.addEventListener("abort", () => {
            env.aborted.add("wait");
            reject(ctx.signal.reason);
          });
        }),
      get: async (req) => {
        await new Promise((r) => setTimeout(r, Number(req.execId || "0")));
        return {};
      },
    });
    router.service(Events, {
      async *subscribe(_req, ctx) {
        ctx.signal.addEventListener("abort", () => env.aborted.add("subscribe"));
        for (let i = 0; !ctx.signal.aborted; i++) {
          yield { topic: `/t/${i}` };
          await new Promise((r) => setTimeout(r, 5));
        }
      },
    });
  };
}

async function setup(interceptors: Interceptor[] = []): Promise<Env> {
  const dir = await Deno.makeTempDir({ prefix: "berth-h2c-" });
  const address = `${dir}/api.sock`;
  const aborted = new Set<string>();
  const server = new ApiServer({ address, routes: routes({ aborted }), log: silentLogger });
  await server.listen();
  const env: Env = {
    server,
    address,
    aborted,
    connects: 0,
    transport: new GrpcTransport({
      connect: () => {
        env.connects++;
        return H2ClientConnection.connect(address);
      },
      interceptors,
      readMaxBytes: 16 * MiB,
      writeMaxBytes: 16 * MiB,
    }),
    async close() {
      env.transport.close();
      await server.close(500);
      await Deno.remove(dir, { recursive: true });
    },
  };
  return env;
}

Deno.test("GrpcTransport makes unary calls, many at once over one connection, and runs interceptors", async () => {
  const seen: string[] = [];
  const env = await setup([(next) => (req) => {
    seen.push(req.method.name);
    req.header.set("x-test", "intercepted");
    return next(req);
  }]);
  try {
    const client = createClient(Version, env.transport);
    const res = await client.version({});
    assert.equal(res.version, "1.2.3");
    assert.equal(res.revision, "intercepted");
    const all = await Promise.all(Array.from({ length: 50 }, () => client.version({})));
    assert.equal(all.length, 50);
    assert.ok(all.every((r) => r.version === "1.2.3"));
    assert.equal(env.connects, 1);
    assert.equal(seen.length, 51);
  } finally {
    await env.close();
  }
});

Deno.test("GrpcTransport reads a server stream of 5 MiB intact through flow control", async () => {
  const env = await setup();
  try {
    const client = createClient(Content, env.transport);
    let got = 0;
    for await (const r of client.read({ size: BigInt(5 * MiB) })) {
      assert.equal(Number(r.offset), got);
      assert.deepEqual(r.data, pattern(got, r.data.length));
      got += r.data.length;
    }
    assert.equal(got, 5 * MiB);
  } finally {
    await env.close();
  }
});

Deno.test("GrpcTransport streams 5 MiB of requests to the server within its windows", async () => {
  const env = await setup();
  try {
    const client = createClient(Content, env.transport);
    const out = [];
    for await (const r of client.write(writeRequests(5 * MiB, 100_000))) out.push(r);
    assert.equal(out.length, 1);
    assert.equal(Number(out[0]!.offset), 5 * MiB);
    assert.equal(out[0]!.digest, "intact");
  } finally {
    await env.close();
  }
});

Deno.test("GrpcTransport turns an error status into a ConnectError with its code, message and metadata", async () => {
  const env = await setup();
  try {
    const client = createClient(Containers, env.transport);
    const err = await client.get({ id: "c1" }).then(() => undefined, (e) => e);
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, Code.NotFound);
    assert.equal(err.rawMessage, 'container "c1" not found: 100% gone ✓');
    assert.equal(err.metadata.get("x-why"), "test");
    const unknown = await createClient(Version, env.transport).version({}, { headers: {} });
    assert.equal(unknown.version, "1.2.3");
  } finally {
    await env.close();
  }
});

Deno.test("GrpcTransport ends a call at its deadline and the server sees it end", async () => {
  const env = await setup();
  try {
    const client = createClient(Tasks, env.transport);
    const start = performance.now();
    const err = await client.wait({ containerId: "x" }, { timeoutMs: 150 }).then(() => undefined, (e) => e);
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, Code.DeadlineExceeded);
    assert.ok(performance.now() - start < 2000);
    for (let i = 0; i < 50 && !env.aborted.has("wait"); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(env.aborted.has("wait"));
    // The connection still serves calls.
    assert.equal((await createClient(Version, env.transport).version({})).version, "1.2.3");
  } finally {
    await env.close();
  }
});

Deno.test("GrpcTransport cancels a stream with RST_STREAM when its signal aborts", async () => {
  const env = await setup();
  try {
    const client = createClient(Events, env.transport);
    const ac = new AbortController();
    const topics: string[] = [];
    const err = await (async () => {
      for await (const e of client.subscribe({}, { signal: ac.signal })) {
        topics.push(e.topic);
        if (topics.length === 3) ac.abort();
      }
    })().then(() => undefined, (e) => e);
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, Code.Canceled);
    assert.deepEqual(topics, ["/t/0", "/t/1", "/t/2"]);
    for (let i = 0; i < 50 && !env.aborted.has("subscribe"); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(env.aborted.has("subscribe"));
  } finally {
    await env.close();
  }
});

Deno.test("GrpcTransport lets calls in flight finish after GOAWAY and opens a new connection for new ones", async () => {
  const env = await setup();
  let second: ApiServer | undefined;
  try {
    const client = createClient(Tasks, env.transport);
    const version = createClient(Version, env.transport);
    await version.version({});
    // A slow call is in flight when the server says GOAWAY (its graceful close).
    const slow = client.get({ containerId: "x", execId: "300" }).then(() => "ok", (e) => e);
    await new Promise((r) => setTimeout(r, 50));
    const closing = env.server.close(5000);
    await new Promise((r) => setTimeout(r, 50));
    // The listener is gone: a new call must not use the old connection, so it cannot connect.
    const refused = await version.version({}).then(() => undefined, (e) => e);
    assert.ok(refused instanceof ConnectError);
    assert.equal(refused.code, Code.Unavailable);
    assert.match(refused.rawMessage, /ENOENT|ECONNREFUSED|No such file|refused/);
    assert.equal(await slow, "ok");
    await closing;
    second = new ApiServer({
      address: env.address,
      routes: routes({ aborted: env.aborted }),
      log: silentLogger,
    });
    await second.listen();
    assert.equal((await version.version({})).version, "1.2.3");
    assert.equal(env.connects, 3);
  } finally {
    env.transport.close();
    await second?.close(500);
    await env.close();
  }
});
