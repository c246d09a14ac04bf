import assert from "node:assert/strict";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ApiServer } from "../daemon/server.ts";
import { silentLogger } from "../daemon/log.ts";
import { Run, RunEventSchema, RunRequestSchema } from "../gen/berth/run/v1/run_pb.ts";
import { serverStreamBytes } from "./bytes_call.ts";

const runPath = "/berth.run.v1.Run/Run";

/** A Run service whose answer the request's image names; `aborted` learns of calls that ended early. */
function routes(aborted: Set<string>) {
  return (router: ConnectRouter) => {
    router.service(Run, {
      async *run(req, ctx) {
        ctx.signal.addEventListener("abort", () => aborted.add(req.id));
        const namespace = ctx.requestHeader.get("containerd-namespace") ?? "";
        if (req.image === "fails") {
          yield { event: { case: "started", value: 7 } };
          throw new ConnectError(`container "${req.id}" in ${namespace}: 100% gone ✓`, Code.NotFound);
        }
        if (req.image === "endless") {
          for (let i = 1; !ctx.signal.aborted; i++) {
            yield { event: { case: "started", value: i } };
            await new Promise((r) => setTimeout(r, 5));
          }
          return;
        }
        yield { event: { case: "imageNotReady", value: `${req.image} in ${namespace}` } };
        yield { event: { case: "exited", value: 3 } };
      },
    });
  };
}

async function withServer(fn: (address: string, aborted: Set<string>) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-bytes-call-" });
  const address = `${dir}/api.sock`;
  const aborted = new Set<string>();
  const server = new ApiServer({ address, routes: routes(aborted), log: silentLogger });
  await server.listen();
  try {
    await fn(address, aborted);
  } finally {
    await server.close(500);
    await Deno.remove(dir, { recursive: true });
  }
}

const request = (image: string, id = "c1") =>
  toBinary(RunRequestSchema, create(RunRequestSchema, { image, id }));

async function events(call: AsyncIterable<Uint8Array>) {
  const out = [];
  for await (const m of call) out.push(fromBinary(RunEventSchema, m).event);
  return out;
}

Deno.test("serverStreamBytes yields a stream's messages with the namespace sent, and ends on OK", async () => {
  await withServer(async (address) => {
    const got = await events(
      serverStreamBytes({ address, namespace: "ns1", path: runPath, request: request("img") }),
    );
    assert.deepEqual(got, [
      { case: "imageNotReady", value: "img in ns1" },
      { case: "exited", value: 3 },
    ]);
  });
});

Deno.test("serverStreamBytes fails with the server's code and message after the messages before it", async () => {
  await withServer(async (address) => {
    const seen: unknown[] = [];
    try {
      for await (
        const m of serverStreamBytes({ address, namespace: "n", path: runPath, request: request("fails") })
      ) {
        seen.push(fromBinary(RunEventSchema, m).event);
      }
      assert.fail("the call succeeded");
    } catch (err) {
      assert.ok(err instanceof ConnectError, String(err));
      assert.equal(err.code, Code.NotFound);
      assert.equal(err.rawMessage, 'container "c1" in n: 100% gone ✓');
    }
    assert.deepEqual(seen, [{ case: "started", value: 7 }]);
  });
});

Deno.test("serverStreamBytes reports an unknown method as Unimplemented and a missing socket as Unavailable", async () => {
  await withServer(async (address) => {
    const call = serverStreamBytes({
      address,
      namespace: "n",
      path: "/berth.run.v1.Run/Nope",
      request: request("img"),
    });
    await assert.rejects(
      events(call),
      (err) => err instanceof ConnectError && err.code === Code.Unimplemented,
    );
  });
  const call = serverStreamBytes({
    address: "/nonexistent/api.sock",
    namespace: "n",
    path: runPath,
    request: request("x"),
  });
  await assert.rejects(
    events(call),
    (err) =>
      err instanceof ConnectError && err.code === Code.Unavailable && /connect ENOENT/.test(err.rawMessage),
  );
});

Deno.test("serverStreamBytes ends the call on the server when the caller stops reading", async () => {
  await withServer(async (address, aborted) => {
    let n = 0;
    for await (
      const _ of serverStreamBytes({
        address,
        namespace: "n",
        path: runPath,
        request: request("endless", "e1"),
      })
    ) {
      if (++n === 3) break;
    }
    for (let i = 0; i < 100 && !aborted.has("e1"); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(aborted.has("e1"), "the server's call was not aborted");
  });
});
