import assert from "node:assert/strict";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { GrpcTransport } from "../client/grpc_transport.ts";
import { H2ClientConnection } from "../h2/client/mod.ts";
import { Version } from "../gen/services/version/v1/version_pb.ts";
import { Namespaces } from "../gen/services/namespaces/v1/namespace_pb.ts";
import { silentLogger } from "./log.ts";
import { ApiServer, type DeferredRoutes } from "./server.ts";

async function withServer(
  deferred: DeferredRoutes[],
  fn: (
    clients: {
      version: ReturnType<typeof createClient<typeof Version>>;
      namespaces: ReturnType<typeof createClient<typeof Namespaces>>;
      address: string;
      server: ApiServer;
    },
  ) => Promise<void>,
  options: { warmQuietMs?: number } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-server-" });
  const address = `${dir}/api.sock`;
  const server = new ApiServer({
    address,
    log: silentLogger,
    routes: (router) => router.service(Namespaces, { list: () => ({ namespaces: [{ name: "default" }] }) }),
    deferred,
    ...options,
  });
  await server.listen();
  const transport = new GrpcTransport({ connect: () => H2ClientConnection.connect(address) });
  try {
    await fn({
      version: createClient(Version, transport),
      namespaces: createClient(Namespaces, transport),
      address,
      server,
    });
  } finally {
    transport.close();
    await server.close(500);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("ApiServer loads deferred routes once, on the first call under their prefix, and calls meanwhile wait", async () => {
  let loads = 0;
  const { promise: gate, resolve: open } = Promise.withResolvers<void>();
  const deferred: DeferredRoutes = {
    prefixes: ["/containerd.services.version."],
    load: async () => {
      loads++;
      await gate;
      return (router) => router.service(Version, { version: () => ({ version: "lazy" }) });
    },
  };
  await withServer([deferred], async ({ version }) => {
    assert.equal(loads, 0);
    const calls = [version.version({}), version.version({})];
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(loads, 1);
    open();
    assert.deepEqual((await Promise.all(calls)).map((r) => r.version), ["lazy", "lazy"]);
    assert.equal((await version.version({})).version, "lazy");
    assert.equal(loads, 1);
  });
});

Deno.test("ApiServer warms deferred routes only once calls have paused, and a closing server stops waiting", async () => {
  let loads = 0;
  const deferred: DeferredRoutes = {
    prefixes: ["/containerd.services.version."],
    warm: true,
    load: () => {
      loads++;
      return Promise.resolve((router) => router.service(Version, { version: () => ({ version: "warm" }) }));
    },
  };
  await withServer([deferred], async ({ namespaces, server }) => {
    const warmed = server.warm();
    // A call every 20 ms never leaves the API quiet for 300 ms.
    const busyUntil = performance.now() + 600;
    while (performance.now() < busyUntil) {
      await namespaces.list({});
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(loads, 0, "warm() loaded while calls kept coming");
    await warmed;
    assert.equal(loads, 1);
  }, { warmQuietMs: 300 });

  // Closed while warm() waits: it ends without loading and leaves no timer behind.
  loads = 0;
  let warming: Promise<void> | undefined;
  await withServer([deferred], ({ server }) => {
    warming = server.warm();
    return Promise.resolve();
  }, { warmQuietMs: 60_000 });
  await warming;
  assert.equal(loads, 0);
});

Deno.test("ApiServer answers unimplemented when deferred routes fail to load, and does not retry", async () => {
  let loads = 0;
  const deferred: DeferredRoutes = {
    prefixes: ["/containerd.services.version."],
    load: () => {
      loads++;
      return Promise.reject(new Error("Cannot load: broken"));
    },
  };
  await withServer([deferred], async ({ version }) => {
    for (let i = 0; i < 2; i++) {
      await assert.rejects(version.version({}), (err) => ConnectError.from(err).code === Code.Unimplemented);
    }
    assert.equal(loads, 1);
  });
});

Deno.test("ApiServer serves deferred routes to HTTP/1.1 callers too", async () => {
  const deferred: DeferredRoutes = {
    prefixes: ["/containerd.services.version."],
    load: () => Promise.resolve((router) => router.service(Version, { version: () => ({ version: "h1" }) })),
  };
  await withServer([deferred], async ({ address }) => {
    const conn = await Deno.connect({ transport: "unix", path: address });
    try {
      const body = "{}";
      await conn.write(new TextEncoder().encode(
        "POST /containerd.services.version.v1.Version/Version HTTP/1.1\r\nHost: localhost\r\n" +
          `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      ));
      const answer = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
      assert.match(answer, /^HTTP\/1\.1 200 /);
      assert.match(answer, /"version":"h1"/);
    } finally {
      try {
        conn.close();
      } catch { /* already closed with its readable */ }
    }
  });
});

Deno.test("A held ApiServer serves its early routes at once; other calls wait for open(), or get UNAVAILABLE if it closes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-server-" });
  const address = `${dir}/api.sock`;
  const held = () =>
    new ApiServer({
      address,
      log: silentLogger,
      routes: (router) => router.service(Version, { version: () => ({ version: "early" }) }),
      held: true,
    });
  const client = () => {
    const transport = new GrpcTransport({ connect: () => H2ClientConnection.connect(address) });
    return {
      transport,
      version: createClient(Version, transport),
      namespaces: createClient(Namespaces, transport),
    };
  };
  try {
    let server = held();
    await server.listen();
    let c = client();
    try {
      let listed = false;
      const list = c.namespaces.list({}).then((r) => (listed = true, r));
      assert.equal((await c.version.version({})).version, "early");
      await server.unaryDone();
      assert.equal(listed, false, "a call to a route not there yet was answered before open()");
      server.open((router) =>
        router.service(Namespaces, { list: () => ({ namespaces: [{ name: "late" }] }) })
      );
      assert.deepEqual((await list).namespaces.map((n) => n.name), ["late"]);
    } finally {
      c.transport.close();
      await server.close(500);
    }

    server = held();
    await server.listen();
    c = client();
    try {
      const list = c.namespaces.list({});
      assert.equal((await c.version.version({})).version, "early");
      const failed = assert.rejects(list, (err) => ConnectError.from(err).code === Code.Unavailable);
      await server.close(500);
      await failed;
    } finally {
      c.transport.close();
      await server.close(500);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
