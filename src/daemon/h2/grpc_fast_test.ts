import assert from "node:assert/strict";
import type * as net from "node:net";
import { fromBinary } from "@bufbuild/protobuf";
import { createConnectRouter } from "@connectrpc/connect";
import { Version, VersionResponseSchema } from "../../gen/services/version/v1/version_pb.ts";
import { notFound } from "../../base/errors.ts";
import { H2ServerConnection } from "../../h2/server/mod.ts";
import { FakeSocket } from "../../h2/server/testing.ts";
import {
  encodeFrame,
  encodeSettings,
  Flag,
  type Frame,
  FrameParser,
  FrameType,
  preface,
} from "../../h2/frames.ts";
import { encodeHeaders, HpackDecoder } from "../../h2/hpack.ts";
import { type FastCall, GrpcFastPath, recordingRouter } from "./grpc_fast.ts";

/** Serves Version with `impl` on the fast path and makes one call with `body`; the frames that came back. */
async function call(
  impl: (req: unknown, ctx: { signal: AbortSignal }) => unknown,
  body: Uint8Array,
  extra: [string, string][] = [],
): Promise<{ frames: Frame[]; headers: Map<string, string>[]; calls: FastCall[]; writes: Uint8Array[] }> {
  const { router, methods } = recordingRouter(createConnectRouter());
  router.service(Version, { version: impl as never });
  const calls: FastCall[] = [];
  const fast = new GrpcFastPath(methods, { maxMessageBytes: 1000, onCall: (c) => calls.push(c) });
  const socket = new FakeSocket();
  const conn = new H2ServerConnection(socket as unknown as net.Socket, {
    onStream: (s) => {
      const served = fast.serve(s);
      assert.ok(served);
      return served;
    },
  });
  const block = encodeHeaders([
    [":method", "POST"],
    [":scheme", "http"],
    [":path", "/containerd.services.version.v1.Version/Version"],
    ["content-type", "application/grpc"],
    ...extra,
  ]);
  conn.receive(new Uint8Array([...preface, ...encodeSettings([])]));
  conn.receive(encodeFrame(FrameType.headers, Flag.endHeaders, 1, block));
  conn.receive(encodeFrame(FrameType.data, Flag.endStream, 1, body));
  for (let i = 0; i < 20 && !socket.written.some((w) => w.length > 0 && hasEnd(w)); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const frames = new FrameParser(1 << 24).push(new Uint8Array(socket.written.flatMap((w) => [...w])));
  const decoder = new HpackDecoder();
  const headers = frames.filter((f) => f.type === FrameType.headers).map((f) =>
    new Map(decoder.decode(f.payload))
  );
  return { frames, headers, calls, writes: socket.written };
}

function hasEnd(bytes: Uint8Array): boolean {
  return new FrameParser(1 << 24).push(bytes).some((f) => f.streamId === 1 && f.flags & Flag.endStream);
}

const emptyMessage = Uint8Array.of(0, 0, 0, 0, 0);

Deno.test("GrpcFastPath answers a unary call with headers, one message and trailers in one write", async () => {
  const { frames, headers, calls, writes } = await call(() => ({ version: "1.2.3" }), emptyMessage);
  const answer = writes.map((w) => new FrameParser(1 << 24).push(w).filter((f) => f.streamId === 1));
  assert.deepEqual(answer.filter((fs) => fs.length > 0).map((fs) => fs.map((f) => f.type)), [
    [FrameType.headers, FrameType.data, FrameType.headers],
  ]);
  assert.deepEqual(
    frames.map((f) => f.type).filter((t) => t !== FrameType.settings && t !== FrameType.windowUpdate),
    [
      FrameType.headers,
      FrameType.data,
      FrameType.headers,
    ],
  );
  assert.equal(headers[0]!.get(":status"), "200");
  assert.equal(headers[1]!.get("grpc-status"), "0");
  const data = frames.find((f) => f.type === FrameType.data)!;
  assert.equal(fromBinary(VersionResponseSchema, data.payload.subarray(5)).version, "1.2.3");
  assert.equal(calls[0]!.code, 0);
});

Deno.test("GrpcFastPath maps core errors to grpc-status in a trailers-only answer", async () => {
  const { headers, calls } = await call(() => {
    throw notFound('Image "x" not found: 100% gone');
  }, emptyMessage);
  assert.equal(headers.length, 1);
  assert.equal(headers[0]!.get("grpc-status"), "5");
  // Percent-encoded as connect-es encodes it; any gRPC client decodes it back.
  assert.equal(decodeURIComponent(headers[0]!.get("grpc-message")!), 'Image "x" not found: 100% gone');
  assert.equal(calls[0]!.code, 5);
});

Deno.test("GrpcFastPath aborts the handler at grpc-timeout and answers DEADLINE_EXCEEDED", async () => {
  let aborted = false;
  const { headers } = await call(
    (_req, ctx) =>
      new Promise((_resolve, reject) => {
        ctx.signal.addEventListener("abort", () => {
          aborted = true;
          reject(ctx.signal.reason);
        });
      }),
    emptyMessage,
    [["grpc-timeout", "20m"]],
  );
  assert.equal(aborted, true);
  assert.equal(headers.at(-1)!.get("grpc-status"), "4");
});

Deno.test("GrpcFastPath refuses a request message over the size limit with RESOURCE_EXHAUSTED", async () => {
  const { headers } = await call(() => ({}), Uint8Array.of(0, 0, 0, 0x10, 0));
  assert.equal(headers.at(-1)!.get("grpc-status"), "8");
});

Deno.test("GrpcFastPath answers a malformed grpc-timeout with INVALID_ARGUMENT, as connect-es does", async () => {
  let called = false;
  const { headers } = await call(
    () => {
      called = true;
      return {};
    },
    emptyMessage,
    [["grpc-timeout", "soon"]],
  );
  assert.equal(headers.at(-1)!.get("grpc-status"), "3");
  assert.equal(called, false);
});

Deno.test("GrpcFastPath treats a deadline too far for a timer as none rather than as already passed", async () => {
  // 99,999,999 hours: setTimeout would clamp it to 1 ms.
  const { headers } = await call(
    () => new Promise((r) => setTimeout(() => r({ version: "v" }), 30)),
    emptyMessage,
    [[
      "grpc-timeout",
      "99999999H",
    ]],
  );
  assert.equal(headers.at(-1)!.get("grpc-status"), "0");
});
