import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { GrpcTransport } from "../client/grpc_transport.ts";
import { encodeEnvelope } from "./grpc_envelope.ts";
import { Version, VersionResponseSchema } from "../gen/services/version/v1/version_pb.ts";
import { H2ClientConnection } from "./client.ts";
import {
  encodeFrame,
  encodeGoaway,
  encodeSettings,
  ErrorCode,
  Flag,
  FrameParser,
  FrameType,
  preface,
} from "./frames.ts";
import { encodeHeaders, HpackDecoder } from "./hpack.ts";

/**
 * A scripted HTTP/2 server: on its first connection it waits for two requests, sends GOAWAY naming only
 * the first as processed, answers that one and closes; later connections answer every request.
 */
async function scriptedServer(listener: Deno.Listener, paths: string[]): Promise<void> {
  let first = true;
  for await (const conn of listener) {
    const goaway = first;
    first = false;
    const parser = new FrameParser();
    const decoder = new HpackDecoder();
    const send = (b: Uint8Array) => conn.write(b);
    await send(encodeSettings([]));
    const ended: number[] = [];
    let skip = preface.length;
    const answer = async (id: number) => {
      const body = encodeEnvelope(
        toBinary(VersionResponseSchema, create(VersionResponseSchema, { version: `s${id}` })),
      );
      await send(encodeFrame(
        FrameType.headers,
        Flag.endHeaders,
        id,
        encodeHeaders([[":status", "200"], ["content-type", "application/grpc+proto"]]),
      ));
      await send(encodeFrame(FrameType.data, 0, id, body));
      await send(
        encodeFrame(
          FrameType.headers,
          Flag.endHeaders | Flag.endStream,
          id,
          encodeHeaders([["grpc-status", "0"]]),
        ),
      );
    };
    const buf = new Uint8Array(1 << 16);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      let chunk = buf.slice(0, n);
      const k = Math.min(skip, chunk.length);
      skip -= k;
      chunk = chunk.subarray(k);
      for (const f of parser.push(chunk)) {
        if (f.type === FrameType.settings && !(f.flags & Flag.ack)) {
          await send(encodeFrame(FrameType.settings, Flag.ack, 0));
        } else if (f.type === FrameType.headers) {
          const fields = decoder.decode(f.payload);
          paths.push(fields.find(([name]) => name === ":path")?.[1] ?? "");
        }
        if ((f.type === FrameType.data || f.type === FrameType.headers) && f.flags & Flag.endStream) {
          ended.push(f.streamId);
          if (!goaway) await answer(f.streamId);
        }
      }
      if (goaway && ended.length === 2) {
        await send(encodeGoaway(1, ErrorCode.noError));
        await answer(1);
        break;
      }
    }
    conn.close();
  }
}

Deno.test("H2ClientConnection honours GOAWAY: the processed stream completes, the refused one is retried on a new connection", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-h2-client-" });
  const path = `${dir}/s.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const paths: string[] = [];
  const served = scriptedServer(listener, paths);
  let connects = 0;
  const transport = new GrpcTransport({
    connect: () => {
      connects++;
      return H2ClientConnection.connect(path);
    },
    defaultTimeoutMs: 5000,
  });
  try {
    const client = createClient(Version, transport);
    const [a, b] = await Promise.all([client.version({}), client.version({})]);
    assert.equal(a.version, "s1");
    // The second call (stream 3) was refused by GOAWAY(last=1) and ran as stream 1 of a new connection.
    assert.equal(b.version, "s1");
    assert.equal(connects, 2);
    assert.deepEqual(paths, Array(3).fill("/containerd.services.version.v1.Version/Version"));
  } finally {
    transport.close();
    listener.close();
    await served.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("H2ClientConnection.connect names the errno and path when nothing listens", async () => {
  const err = await H2ClientConnection.connect("/nonexistent/berth.sock").then(() => undefined, (e) => e);
  assert.ok(err instanceof Error);
  assert.match(err.message, /^connect ENOENT \/nonexistent\/berth.sock: /);
});
