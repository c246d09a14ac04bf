import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { GrpcTransport } from "../../client/grpc_transport.ts";
import { Version, VersionResponseSchema } from "../../gen/services/version/v1/version_pb.ts";
import { H2ClientConnection } from "./connection.ts";
import { H2StreamError } from "../stream.ts";
import {
  encodeFrame,
  encodeGoaway,
  encodeSettings,
  ErrorCode,
  Flag,
  FrameParser,
  FrameType,
  preface,
} from "../frames.ts";
import { encodeHeaders, HpackDecoder } from "../hpack.ts";

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
        0,
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

// --- limits: the client holds them against a server too ---------------------------------------------

/** Stands in for a Deno.Conn: the test plays the server. `stalled`, writes never finish (a server that does not read). */
class FakeConn {
  readonly written: Uint8Array[] = [];
  stalled = false;
  closed = false;
  readonly #inbox: Uint8Array[] = [];
  #reader: (() => void) | undefined;

  /** Bytes from the server. */
  serve(...chunks: Uint8Array[]): void {
    this.#inbox.push(...chunks);
    this.#reader?.();
  }

  async read(buf: Uint8Array): Promise<number | null> {
    while (this.#inbox.length === 0) {
      if (this.closed) throw new Deno.errors.BadResource("closed");
      await new Promise<void>((resolve) => this.#reader = resolve);
      this.#reader = undefined;
    }
    const chunk = this.#inbox[0]!;
    const n = Math.min(buf.length, chunk.length);
    buf.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#inbox.shift();
    else this.#inbox[0] = chunk.subarray(n);
    return n;
  }

  write(b: Uint8Array): Promise<number> {
    this.written.push(b.slice());
    if (this.stalled) return new Promise(() => {});
    return Promise.resolve(b.length);
  }

  close(): void {
    this.closed = true;
    this.#reader?.();
  }

  ref(): void {}
  unref(): void {}

  /** The frames the client wrote, after its preface. */
  frames(): ReturnType<FrameParser["push"]> {
    const all = new Uint8Array(this.written.reduce((n, w) => n + w.length, 0));
    let at = 0;
    for (const w of this.written) {
      all.set(w, at);
      at += w.length;
    }
    return new FrameParser(1 << 24).push(all.subarray(preface.length));
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const callFields: [string, string][] = [[":method", "POST"], [":scheme", "http"], [":path", "/a/b"], [
  ":authority",
  "x",
]];

/** A client connection on a FakeConn whose server has sent its SETTINGS. */
function fakeClient(): { conn: FakeConn; client: H2ClientConnection } {
  const conn = new FakeConn();
  const client = new H2ClientConnection(conn as unknown as Deno.Conn);
  conn.serve(encodeSettings([]));
  return { conn, client };
}

const rstOf = (conn: FakeConn, id: number) => {
  const f = conn.frames().find((f) => f.type === FrameType.rstStream && f.streamId === id);
  return f ? new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(0) : undefined;
};

Deno.test("H2ClientConnection fails a response whose decoded header list exceeds its limit with FRAME_SIZE_ERROR, and goes on", async () => {
  const { conn, client } = fakeClient();
  await tick();
  const settings = conn.frames().find((f) => f.type === FrameType.settings)!;
  assert.ok(
    Array.from(
      { length: settings.payload.length / 6 },
      (_, i) => new DataView(settings.payload.buffer, settings.payload.byteOffset).getUint16(6 * i),
    )
      .includes(0x6),
    "SETTINGS_MAX_HEADER_LIST_SIZE is advertised",
  );
  const stream = await client.request(callFields, true);
  // :status 200, a 4,000-byte entry added to the table, then 20,000 references to it: 80 MB decoded.
  const literal = Uint8Array.of(0x40, 1, 0x78, 0x7f, (3873 & 0x7f) | 0x80, 3873 >> 7);
  const block = new Uint8Array(1 + literal.length + 4000 + 20_000);
  block[0] = 0x88;
  block.set(literal, 1);
  block.fill(0x76, 1 + literal.length, 1 + literal.length + 4000);
  block.fill(0x80 | 62, 1 + literal.length + 4000);
  conn.serve(
    encodeFrame(FrameType.headers, 0, 1, block.subarray(0, 16000)),
    encodeFrame(FrameType.continuation, Flag.endHeaders, 1, block.subarray(16000)),
  );
  const err = await stream.response.then(() => undefined, (e) => e);
  assert.ok(err instanceof H2StreamError);
  assert.equal(err.code, ErrorCode.frameSize);
  await tick();
  assert.equal(rstOf(conn, 1), ErrorCode.frameSize);
  // The table stayed in step: the next response may use the entry.
  const next = await client.request(callFields, true);
  conn.serve(
    encodeFrame(FrameType.headers, Flag.endHeaders | Flag.endStream, 3, Uint8Array.of(0x88, 0x80 | 62)),
  );
  const head = await next.response;
  assert.deepEqual(head.fields.find(([n]) => n === "x"), ["x", "v".repeat(4000)]);
  client.destroy();
  await client.done;
});

Deno.test("H2ClientConnection resets a malformed response with PROTOCOL_ERROR", async () => {
  const { conn, client } = fakeClient();
  const cases: [string, [string, string][]][] = [
    ["an upper-case name", [[":status", "200"], ["Grpc-Status", "0"]]],
    ["no :status", [["grpc-status", "0"]]],
    ["a request pseudo-header", [[":status", "200"], [":path", "/"]]],
    ["a connection-specific field", [[":status", "200"], ["keep-alive", "1"]]],
  ];
  let id = 1;
  for (const [what, fields] of cases) {
    const stream = await client.request(callFields, true);
    conn.serve(encodeFrame(FrameType.headers, Flag.endHeaders | Flag.endStream, id, encodeHeaders(fields)));
    const err = await stream.response.then(() => undefined, (e) => e);
    assert.equal(err?.code, ErrorCode.protocol, what);
    await tick();
    assert.equal(rstOf(conn, id), ErrorCode.protocol, what);
    id += 2;
  }
  assert.equal(client.usable, true);
  client.destroy();
  await client.done;
});

Deno.test("H2ClientConnection closes when a server that does not read floods it with PINGs", async () => {
  const { conn, client } = fakeClient();
  await tick();
  conn.stalled = true;
  const ping = encodeFrame(FrameType.ping, 0, 0, new Uint8Array(8));
  conn.serve(ping);
  await tick();
  const flood = new Uint8Array(ping.length * 10_001);
  for (let i = 0; i < 10_001; i++) flood.set(ping, i * ping.length);
  conn.serve(flood);
  await client.done;
  assert.equal(conn.closed, true);
  assert.equal(client.usable, false);
});

Deno.test("H2ClientConnection ends a CONTINUATION flood with GOAWAY", async () => {
  const { conn, client } = fakeClient();
  const stream = await client.request(callFields, true);
  conn.serve(encodeFrame(FrameType.headers, 0, 1, encodeHeaders([[":status", "200"]])));
  for (let i = 0; i < 40; i++) conn.serve(encodeFrame(FrameType.continuation, 0, 1));
  const err = await stream.response.then(() => undefined, (e) => e);
  assert.equal(err?.kind, "closed");
  await client.done;
  const goaway = conn.frames().find((f) => f.type === FrameType.goaway)!;
  assert.equal(
    new DataView(goaway.payload.buffer, goaway.payload.byteOffset).getUint32(4),
    ErrorCode.enhanceYourCalm,
  );
});

Deno.test("H2ClientConnection answers a server's connection errors (RFC 9113) with GOAWAY and the matching code", async () => {
  const settings = encodeSettings([]);
  const cases: [string, Uint8Array[], number][] = [
    [
      "a first frame that is not SETTINGS",
      [encodeFrame(FrameType.ping, 0, 0, new Uint8Array(8))],
      ErrorCode.protocol,
    ],
    [
      "DATA on a stream never opened",
      [settings, encodeFrame(FrameType.data, 0, 3, Uint8Array.of(1))],
      ErrorCode.protocol,
    ],
    ["WINDOW_UPDATE on a stream never opened", [
      settings,
      encodeFrame(FrameType.windowUpdate, 0, 5, Uint8Array.of(0, 0, 0, 1)),
    ], ErrorCode.protocol],
    ["RST_STREAM on a stream never opened", [
      settings,
      encodeFrame(FrameType.rstStream, 0, 7, Uint8Array.of(0, 0, 0, 8)),
    ], ErrorCode.protocol],
    ["HEADERS on a server stream id", [
      settings,
      encodeFrame(FrameType.headers, Flag.endHeaders, 2, encodeHeaders([[":status", "200"]])),
    ], ErrorCode.protocol],
    ["a SETTINGS ack with a payload", [
      settings,
      encodeFrame(FrameType.settings, Flag.ack, 0, new Uint8Array(6)),
    ], ErrorCode.frameSize],
    ["SETTINGS_ENABLE_PUSH 1 from a server", [encodeSettings([[0x2, 1]])], ErrorCode.protocol],
    [
      "a GOAWAY too short",
      [settings, encodeFrame(FrameType.goaway, 0, 0, new Uint8Array(4))],
      ErrorCode.frameSize,
    ],
    [
      "PRIORITY on stream 0",
      [settings, encodeFrame(FrameType.priority, 0, 0, new Uint8Array(5))],
      ErrorCode.protocol,
    ],
    [
      "PUSH_PROMISE",
      [settings, encodeFrame(FrameType.pushPromise, Flag.endHeaders, 1, new Uint8Array(4))],
      ErrorCode.protocol,
    ],
  ];
  for (const [what, frames, code] of cases) {
    const conn = new FakeConn();
    const client = new H2ClientConnection(conn as unknown as Deno.Conn);
    const stream = await client.request(callFields, true);
    conn.serve(...frames);
    await stream.response.catch(() => {});
    await client.done;
    const goaway = conn.frames().find((f) => f.type === FrameType.goaway);
    assert.ok(goaway, `GOAWAY for ${what}`);
    assert.equal(new DataView(goaway.payload.buffer, goaway.payload.byteOffset).getUint32(4), code, what);
  }
});
