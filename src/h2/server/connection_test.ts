import assert from "node:assert/strict";
import type * as net from "node:net";
import { H2ServerConnection } from "./connection.ts";
import { FakeSocket } from "./testing.ts";
import {
  encodeFrame,
  encodeGoaway,
  encodeSettings,
  encodeWindowUpdate,
  ErrorCode,
  Flag,
  type Frame,
  FrameParser,
  FrameType,
  H2Error,
  preface,
  readUint32,
  Setting,
} from "../frames.ts";
import { encodeHeaders, HpackDecoder } from "../hpack.ts";
import type { H2ServerStream } from "./stream.ts";

const tick = () => new Promise((r) => setTimeout(r, 0));

/** A client's view: frames the server wrote since the last call. */
class Peer {
  readonly socket = new FakeSocket();
  readonly conn: H2ServerConnection;
  readonly streams: H2ServerStream[] = [];
  readonly #parser = new FrameParser(1 << 24);
  readonly decoder = new HpackDecoder();
  #seen = 0;

  constructor(
    onStream?: (s: H2ServerStream) => void | Promise<unknown>,
    settings: [number, number][] = [],
    options: { maxConcurrentStreams?: number } = {},
  ) {
    this.conn = new H2ServerConnection(this.socket as unknown as net.Socket, {
      ...options,
      onStream: (s) => {
        this.streams.push(s);
        return onStream?.(s);
      },
    });
    this.send(preface, encodeSettings(settings));
  }

  send(...chunks: Uint8Array[]): void {
    for (const c of chunks) this.conn.receive(c);
  }

  async frames(): Promise<Frame[]> {
    await tick();
    const out: Frame[] = [];
    for (const chunk of this.socket.written.slice(this.#seen)) out.push(...this.#parser.push(chunk));
    this.#seen = this.socket.written.length;
    return out;
  }

  request(id: number, path: string, endStream: boolean): void {
    const block = encodeHeaders([[":method", "POST"], [":scheme", "http"], [":path", path], [
      ":authority",
      "x",
    ]]);
    this.send(encodeFrame(FrameType.headers, Flag.endHeaders | (endStream ? Flag.endStream : 0), id, block));
  }
}

const dataBytes = (frames: Frame[], id: number) =>
  frames.filter((f) => f.type === FrameType.data && f.streamId === id).reduce(
    (n, f) => n + f.payload.length,
    0,
  );

Deno.test("FrameParser reassembles frames split across chunks and rejects frames over the size limit", () => {
  const a = encodeFrame(FrameType.ping, 0, 0, new Uint8Array(8).fill(7));
  const b = encodeFrame(FrameType.data, Flag.endStream, 3, new Uint8Array(100).fill(1));
  const all = new Uint8Array([...a, ...b]);
  const p = new FrameParser();
  assert.deepEqual(p.push(all.subarray(0, 5)), []);
  const first = p.push(all.subarray(5, 30));
  assert.equal(first.length, 1);
  assert.equal(first[0]!.type, FrameType.ping);
  const second = p.push(all.subarray(30));
  assert.equal(second.length, 1);
  assert.equal(second[0]!.streamId, 3);
  assert.equal(second[0]!.flags, Flag.endStream);
  assert.equal(second[0]!.payload.length, 100);
  assert.throws(
    () => new FrameParser().push(encodeFrame(FrameType.data, 0, 1, new Uint8Array(16385))),
    H2Error,
  );
});

Deno.test("H2ServerConnection sends its settings and window, acks the client's SETTINGS and answers PING", async () => {
  const peer = new Peer();
  peer.send(encodeFrame(FrameType.ping, 0, 0, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)));
  const frames = await peer.frames();
  const settings = frames.find((f) => f.type === FrameType.settings && !(f.flags & Flag.ack))!;
  assert.ok(settings.payload.length >= 12);
  assert.ok(frames.some((f) => f.type === FrameType.settings && f.flags & Flag.ack));
  assert.ok(frames.some((f) => f.type === FrameType.windowUpdate && f.streamId === 0));
  const pong = frames.find((f) => f.type === FrameType.ping)!;
  assert.equal(pong.flags, Flag.ack);
  assert.deepEqual([...pong.payload], [1, 2, 3, 4, 5, 6, 7, 8]);
  // All of it in one socket write.
  assert.equal(peer.socket.written.length, 1);
});

Deno.test("H2ServerConnection holds a response larger than the peer's window until WINDOW_UPDATE arrives", async () => {
  const body = new Uint8Array(150_000).fill(9);
  let finished = false;
  const peer = new Peer((s) => {
    s.respond([[":status", "200"]]);
    s.write(body).then(() => s.end([["grpc-status", "0"]])).then(() => finished = true);
  });
  peer.request(1, "/a/b", true);
  let frames = await peer.frames();
  assert.equal(dataBytes(frames, 1), 65535, "the default windows allow 65535 bytes");
  assert.ok(frames.every((f) => f.type !== FrameType.data || f.payload.length <= 16384));
  assert.equal(finished, false);
  // The stream window alone is not enough: the connection window is also spent.
  peer.send(encodeWindowUpdate(1, 100_000));
  assert.equal(dataBytes(await peer.frames(), 1), 0);
  peer.send(encodeWindowUpdate(0, 50_000));
  assert.equal(dataBytes(await peer.frames(), 1), 50_000);
  peer.send(encodeWindowUpdate(0, 100_000));
  frames = await peer.frames();
  assert.equal(dataBytes(frames, 1), 150_000 - 115_535);
  const trailers = frames.find((f) => f.type === FrameType.headers)!;
  assert.equal(trailers.flags & Flag.endStream, Flag.endStream);
  await tick();
  assert.equal(finished, true);
});

Deno.test("H2ServerConnection applies a SETTINGS_INITIAL_WINDOW_SIZE change to open streams", async () => {
  const peer = new Peer((s) => {
    s.respond([[":status", "200"]]);
    s.write(new Uint8Array(40_000)).catch(() => {});
  }, [[Setting.initialWindowSize, 10_000]]);
  peer.request(1, "/a/b", true);
  assert.equal(dataBytes(await peer.frames(), 1), 10_000);
  peer.send(encodeSettings([[Setting.initialWindowSize, 30_000]]));
  assert.equal(dataBytes(await peer.frames(), 1), 20_000);
});

Deno.test("H2ServerConnection opens the request windows as the body is read and resets a stream that overruns", async () => {
  const peer = new Peer();
  peer.request(1, "/upload", false);
  const chunk = new Uint8Array(16384);
  for (let i = 0; i < 32; i++) peer.send(encodeFrame(FrameType.data, 0, 1, chunk)); // 512 KiB: half the window
  let frames = await peer.frames();
  assert.ok(!frames.some((f) => f.type === FrameType.windowUpdate && f.streamId === 1), "nothing read yet");
  const stream = peer.streams[0]!;
  for (let i = 0; i < 32; i++) assert.equal((await stream.read())!.length, 16384);
  frames = await peer.frames();
  const update = frames.find((f) => f.type === FrameType.windowUpdate && f.streamId === 1)!;
  assert.equal(readUint32(update.payload, 0), 512 * 1024);
  // Now overrun the stream window (1 MiB + the 512 KiB given back).
  for (let i = 0; i < 64 + 32 + 1; i++) peer.send(encodeFrame(FrameType.data, 0, 1, chunk));
  frames = await peer.frames();
  const rst = frames.find((f) => f.type === FrameType.rstStream && f.streamId === 1)!;
  assert.equal(readUint32(rst.payload, 0), ErrorCode.flowControl);
});

Deno.test("H2ServerConnection decodes padded HEADERS with priority and CONTINUATION, and request trailers end the body", async () => {
  const peer = new Peer();
  const block = encodeHeaders([[":method", "POST"], [":scheme", "http"], [":path", "/x/y"], [
    "te",
    "trailers",
  ], [
    "a",
    "b".repeat(50),
  ]]);
  const head = new Uint8Array([3, 0, 0, 0, 0, 16, ...block.subarray(0, 10), 0, 0, 0]);
  peer.send(
    encodeFrame(FrameType.headers, Flag.padded | Flag.priority, 1, head),
    encodeFrame(FrameType.continuation, Flag.endHeaders, 1, block.subarray(10)),
    encodeFrame(FrameType.data, Flag.padded, 1, Uint8Array.of(2, 42, 0, 0)),
    encodeFrame(FrameType.headers, Flag.endHeaders | Flag.endStream, 1, encodeHeaders([["x-trailer", "1"]])),
  );
  await tick();
  const s = peer.streams[0]!;
  assert.equal(s.path, "/x/y");
  assert.equal(s.header("a"), "b".repeat(50));
  assert.deepEqual([...(await s.read())!], [42]);
  assert.equal(await s.read(), null);
});

Deno.test("H2ServerConnection finishes open streams after a client GOAWAY, then closes without an error", async () => {
  const peer = new Peer();
  peer.request(1, "/a/b", true);
  peer.send(encodeGoaway(1, ErrorCode.noError));
  peer.request(3, "/a/b", true);
  await tick();
  assert.equal(peer.streams.length, 1, "no new streams after GOAWAY");
  assert.equal(peer.socket.ended, false);
  peer.streams[0]!.respond([[":status", "200"]], true);
  await peer.frames();
  assert.equal(peer.socket.ended, true);
});

Deno.test("H2ServerConnection answers protocol errors with GOAWAY and the matching code", () => {
  const cases: [Uint8Array, number][] = [
    [new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n123456"), ErrorCode.protocol],
    [
      new Uint8Array([...preface, ...encodeFrame(FrameType.ping, 0, 0, new Uint8Array(8))]),
      ErrorCode.protocol,
    ],
    [
      new Uint8Array([...preface, ...encodeSettings([[Setting.initialWindowSize, 2 ** 31]])]),
      ErrorCode.flowControl,
    ],
    [
      new Uint8Array([
        ...preface,
        ...encodeSettings([]),
        ...encodeFrame(FrameType.headers, 4, 2, new Uint8Array()),
      ]),
      ErrorCode.protocol,
    ],
    [
      new Uint8Array([
        ...preface,
        ...encodeSettings([]),
        ...encodeFrame(FrameType.headers, 4, 1, Uint8Array.of(0xbf)),
      ]),
      ErrorCode.compression,
    ],
  ];
  for (const [bytes, code] of cases) {
    const socket = new FakeSocket();
    const conn = new H2ServerConnection(socket as unknown as net.Socket, { onStream: () => {} });
    conn.receive(bytes);
    const frames = new FrameParser(1 << 24).push(new Uint8Array(socket.written.flatMap((w) => [...w])));
    const goaway = frames.find((f) => f.type === FrameType.goaway);
    assert.ok(goaway, `GOAWAY for case with code ${code}`);
    assert.equal(readUint32(goaway.payload, 4), code);
    assert.equal(socket.ended, true);
  }
});

Deno.test("H2ServerStream reports a client reset through its signal and pending reads", async () => {
  const peer = new Peer();
  peer.request(1, "/a/b", false);
  await tick();
  const s = peer.streams[0]!;
  const signal = s.signal;
  const read = s.read();
  peer.send(encodeFrame(FrameType.rstStream, 0, 1, Uint8Array.of(0, 0, 0, 8)));
  await assert.rejects(read);
  assert.equal(signal.aborted, true);
  assert.equal(s.closed, true);
  assert.equal(peer.conn.streamCount, 0);
});

// --- limits (RFC 9113 §10.5) ----------------------------------------------------------------------

const request = (path = "/a/b"): [string, string][] => [
  [":method", "POST"],
  [":scheme", "http"],
  [":path", path],
  [":authority", "x"],
];

/** A header block that adds a 4,000-byte HPACK entry and then refers to it `refs` times, one byte each. */
function hpackBomb(refs: number): Uint8Array {
  const head = encodeHeaders(request());
  const literal = Uint8Array.of(0x40, 1, 0x78, 0x7f, (3873 & 0x7f) | 0x80, 3873 >> 7);
  const block = new Uint8Array(head.length + literal.length + 4000 + refs);
  block.set(head);
  block.set(literal, head.length);
  block.fill(0x76, head.length + literal.length, head.length + literal.length + 4000);
  block.fill(0x80 | 62, head.length + literal.length + 4000);
  return block;
}

const rstCode = (frames: Frame[], id: number) => {
  const f = frames.find((f) => f.type === FrameType.rstStream && f.streamId === id);
  return f ? readUint32(f.payload, 0) : undefined;
};
const goawayCode = (frames: Frame[]) => {
  const f = frames.find((f) => f.type === FrameType.goaway);
  return f ? readUint32(f.payload, 4) : undefined;
};

Deno.test("H2ServerConnection advertises SETTINGS_MAX_HEADER_LIST_SIZE and resets a stream whose decoded list exceeds it, keeping the connection", async () => {
  const peer = new Peer();
  const settings = (await peer.frames()).find((f) => f.type === FrameType.settings && !(f.flags & Flag.ack))!;
  const advertised = new Map<number, number>();
  for (let at = 0; at < settings.payload.length; at += 6) {
    advertised.set(
      (settings.payload[at]! << 8) | settings.payload[at + 1]!,
      readUint32(settings.payload, at + 2),
    );
  }
  assert.equal(advertised.get(Setting.maxHeaderListSize), 64 << 10);
  // 15 KB on the wire, 60 MB decoded: split over CONTINUATION frames.
  const bomb = hpackBomb(15_000);
  const started = performance.now();
  peer.send(
    encodeFrame(FrameType.headers, Flag.endStream, 1, bomb.subarray(0, 8000)),
    encodeFrame(FrameType.continuation, Flag.endHeaders, 1, bomb.subarray(8000)),
  );
  assert.ok(performance.now() - started < 50, "decoding stops collecting at the limit");
  const frames = await peer.frames();
  assert.equal(rstCode(frames, 1), ErrorCode.frameSize, "as grpc-go answers");
  // The HPACK table stayed in step: a request using the entry the bomb added is decoded as sent.
  const block = new Uint8Array([...encodeHeaders(request()), 0x80 | 62]);
  peer.send(encodeFrame(FrameType.headers, Flag.endHeaders | Flag.endStream, 3, block));
  await tick();
  assert.equal(peer.streams.length, 1, "only the second stream has a handler");
  assert.equal(peer.streams[0]!.header("x"), "v".repeat(4000));
  assert.equal(goawayCode(await peer.frames()), undefined);
});

Deno.test("H2ServerConnection ends a header block over twice the list limit or 32 CONTINUATION frames with GOAWAY", async () => {
  const big = new Peer();
  const bomb = hpackBomb(140_000);
  const frames = [encodeFrame(FrameType.headers, Flag.endStream, 1, bomb.subarray(0, 16384))];
  for (let at = 16384; at < bomb.length; at += 16384) {
    const last = at + 16384 >= bomb.length;
    frames.push(
      encodeFrame(FrameType.continuation, last ? Flag.endHeaders : 0, 1, bomb.subarray(at, at + 16384)),
    );
  }
  big.send(...frames);
  assert.equal(goawayCode(await big.frames()), ErrorCode.enhanceYourCalm);
  assert.equal(big.socket.ended, true);

  const flood = new Peer();
  flood.send(encodeFrame(FrameType.headers, 0, 1, encodeHeaders(request())));
  const empty = encodeFrame(FrameType.continuation, 0, 1);
  for (let i = 0; i < 32; i++) flood.send(empty);
  assert.equal(goawayCode(await flood.frames()), undefined, "32 CONTINUATION frames are allowed");
  flood.send(empty);
  assert.equal(goawayCode(await flood.frames()), ErrorCode.enhanceYourCalm);
  assert.equal(flood.socket.ended, true);
});

Deno.test("H2ServerConnection closes the connection of a peer that leaves 10,000 control frames unread", async () => {
  const peer = new Peer();
  await peer.frames();
  peer.socket.blocked = true;
  const ping = encodeFrame(FrameType.ping, 0, 0, new Uint8Array(8));
  // The first answer takes the socket's buffer; the ones after it queue behind the drain that never comes.
  peer.send(ping);
  await tick();
  for (let i = 0; i < 10_000; i++) peer.send(ping);
  await tick();
  assert.equal(peer.socket.destroyed, false, "10,000 queued answers are tolerated");
  peer.send(ping);
  await tick();
  assert.equal(peer.socket.destroyed, true);
  assert.equal(peer.conn.isClosed, true);
});

Deno.test("H2ServerConnection frames a response body only while the socket takes it, and closes at 1 MiB of other backlog", async () => {
  let finished = false;
  const peer = new Peer((s) => {
    s.respond([[":status", "200"]]);
    s.write(new Uint8Array(4 << 20)).then(() => finished = true);
  }, [[Setting.initialWindowSize, 0x7fffffff]]);
  peer.send(encodeWindowUpdate(0, 0x7fffffff - 65535));
  await peer.frames();
  peer.socket.blocked = true;
  peer.request(1, "/a/b", true);
  await tick();
  const first = dataBytes(await peer.frames(), 1);
  assert.ok(first <= 320 << 10, `${first} bytes framed: no more than the high-water mark and a frame`);
  assert.equal(finished, false);
  peer.socket.unblock();
  for (let i = 0; i < 100 && !finished; i++) await tick();
  assert.equal(finished, true, "the body goes on once the socket drains");
  assert.equal(first + dataBytes(await peer.frames(), 1), 4 << 20);
  // HEADERS a client provokes without reading are not held back: past 1 MiB the connection ends.
  const unknown = new Peer((s) => s.respond([[":status", "404"], ["x-pad", "p".repeat(1000)]], true));
  unknown.socket.blocked = true;
  unknown.send(encodeFrame(FrameType.ping, 0, 0, new Uint8Array(8)));
  await tick();
  for (let id = 1; id < 2 * 2000 && !unknown.conn.isClosed; id += 2) {
    unknown.request(id, "/x", true);
    await Promise.resolve();
  }
  assert.equal(unknown.conn.isClosed, true);
  assert.equal(unknown.socket.destroyed, true);
});

Deno.test("H2ServerConnection resets malformed requests with PROTOCOL_ERROR and serves the next one", async () => {
  const peer = new Peer();
  const cases: [string, [string, string][]][] = [
    ["upper-case name", [...request(), ["X-A", "1"]]],
    ["NUL in a name", [...request(), ["x\0a", "1"]]],
    ["CR LF in a value", [...request(), ["x-a", "1\r\n2"]]],
    ["duplicated :path", [...request(), [":path", "/c/d"]]],
    ["pseudo-header after a regular field", [["x-a", "1"], ...request()]],
    ["connection-specific field", [...request(), ["connection", "close"]]],
    ["te other than trailers", [...request(), ["te", "gzip"]]],
    ["no :scheme", request().filter(([n]) => n !== ":scheme")],
  ];
  let id = 1;
  for (const [what, fields] of cases) {
    peer.send(encodeFrame(FrameType.headers, Flag.endHeaders | Flag.endStream, id, encodeHeaders(fields)));
    assert.equal(rstCode(await peer.frames(), id), ErrorCode.protocol, what);
    id += 2;
  }
  peer.request(id, "/a/b", true);
  await tick();
  assert.equal(peer.streams.length, 1, "only the well-formed request has a handler");
  // Trailers with a pseudo-header reset the stream too.
  peer.request(id + 2, "/a/b", false);
  peer.send(
    encodeFrame(FrameType.headers, Flag.endHeaders | Flag.endStream, id + 2, encodeHeaders([[":path", "/"]])),
  );
  assert.equal(rstCode(await peer.frames(), id + 2), ErrorCode.protocol);
  assert.equal(goawayCode(await peer.frames()), undefined);
});

Deno.test("H2ServerConnection refuses streams over SETTINGS_MAX_CONCURRENT_STREAMS", async () => {
  const peer = new Peer(undefined, [], { maxConcurrentStreams: 2 });
  for (const id of [1, 3, 5]) peer.request(id, "/a/b", false);
  const frames = await peer.frames();
  assert.equal(peer.streams.length, 2);
  assert.equal(rstCode(frames, 5), ErrorCode.refusedStream);
});

Deno.test("H2ServerConnection starts no more handlers than streams may be open while reset streams' handlers run, and ends a rapid reset", async () => {
  const finish: (() => void)[] = [];
  const peer = new Peer(() => new Promise<void>((resolve) => finish.push(resolve)), [], {
    maxConcurrentStreams: 2,
  });
  const reset = (id: number) =>
    encodeFrame(FrameType.rstStream, 0, id, Uint8Array.of(0, 0, 0, ErrorCode.cancel));
  // A stream reset in the chunk that opened it never gets a handler.
  peer.request(1, "/a/b", true);
  peer.send(reset(1));
  await tick();
  assert.equal(finish.length, 0);
  for (const id of [3, 5]) peer.request(id, "/a/b", true);
  await tick();
  peer.send(reset(3), reset(5));
  assert.equal(finish.length, 2, "two handlers run although their streams were reset");
  for (const id of [7, 9]) peer.request(id, "/a/b", true);
  await tick();
  assert.equal(finish.length, 2, "the next streams wait for a handler to finish");
  finish[0]!();
  await tick();
  assert.equal(finish.length, 3, "one starts when one finishes");
  assert.equal(peer.streams.at(-1)!.id, 7);
  // A client that keeps opening and resetting: 4 × the limit may wait, then it is told to calm down.
  peer.send(reset(7), reset(9));
  let id = 11;
  for (; id < 11 + 2 * 7; id += 2) {
    peer.request(id, "/a/b", true);
    peer.send(reset(id));
  }
  assert.equal(goawayCode(await peer.frames()), undefined, "8 streams wait (7 among them)");
  peer.request(id, "/a/b", true);
  assert.equal(goawayCode(await peer.frames()), ErrorCode.enhanceYourCalm);
});
