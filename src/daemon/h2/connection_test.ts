import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type * as net from "node:net";
import { H2Connection } from "./connection.ts";
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
} from "../../h2/frames.ts";
import { encodeHeaders, HpackDecoder } from "../../h2/hpack.ts";
import type { H2Stream } from "./stream.ts";

/** Stands in for a net.Socket: records what the connection writes. */
class FakeSocket extends EventEmitter {
  readonly written: Uint8Array[] = [];
  writableNeedDrain = false;
  destroyed = false;
  writable = true;
  ended = false;
  write(b: Uint8Array): boolean {
    this.written.push(b);
    return true;
  }
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));

/** A client's view: frames the server wrote since the last call. */
class Peer {
  readonly socket = new FakeSocket();
  readonly conn: H2Connection;
  readonly streams: H2Stream[] = [];
  readonly #parser = new FrameParser(1 << 24);
  readonly decoder = new HpackDecoder();
  #seen = 0;

  constructor(onStream?: (s: H2Stream) => void, settings: [number, number][] = []) {
    this.conn = new H2Connection(this.socket as unknown as net.Socket, {
      onStream: (s) => {
        this.streams.push(s);
        onStream?.(s);
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

Deno.test("H2Connection sends its settings and window, acks the client's SETTINGS and answers PING", async () => {
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

Deno.test("H2Connection holds a response larger than the peer's window until WINDOW_UPDATE arrives", async () => {
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

Deno.test("H2Connection applies a SETTINGS_INITIAL_WINDOW_SIZE change to open streams", async () => {
  const peer = new Peer((s) => {
    s.respond([[":status", "200"]]);
    s.write(new Uint8Array(40_000)).catch(() => {});
  }, [[Setting.initialWindowSize, 10_000]]);
  peer.request(1, "/a/b", true);
  assert.equal(dataBytes(await peer.frames(), 1), 10_000);
  peer.send(encodeSettings([[Setting.initialWindowSize, 30_000]]));
  assert.equal(dataBytes(await peer.frames(), 1), 20_000);
});

Deno.test("H2Connection opens the request windows as the body is read and resets a stream that overruns", async () => {
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

Deno.test("H2Connection decodes padded HEADERS with priority and CONTINUATION, and request trailers end the body", async () => {
  const peer = new Peer();
  const block = encodeHeaders([[":method", "POST"], [":path", "/x/y"], ["te", "trailers"], [
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
  const s = peer.streams[0]!;
  assert.equal(s.path, "/x/y");
  assert.equal(s.header("a"), "b".repeat(50));
  assert.deepEqual([...(await s.read())!], [42]);
  assert.equal(await s.read(), null);
});

Deno.test("H2Connection finishes open streams after a client GOAWAY, then closes without an error", async () => {
  const peer = new Peer();
  peer.request(1, "/a/b", true);
  peer.send(encodeGoaway(1, ErrorCode.noError));
  peer.request(3, "/a/b", true);
  assert.equal(peer.streams.length, 1, "no new streams after GOAWAY");
  assert.equal(peer.socket.ended, false);
  peer.streams[0]!.respond([[":status", "200"]], true);
  await peer.frames();
  assert.equal(peer.socket.ended, true);
});

Deno.test("H2Connection answers protocol errors with GOAWAY and the matching code", () => {
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
    const conn = new H2Connection(socket as unknown as net.Socket, { onStream: () => {} });
    conn.receive(bytes);
    const frames = new FrameParser(1 << 24).push(new Uint8Array(socket.written.flatMap((w) => [...w])));
    const goaway = frames.find((f) => f.type === FrameType.goaway);
    assert.ok(goaway, `GOAWAY for case with code ${code}`);
    assert.equal(readUint32(goaway.payload, 4), code);
    assert.equal(socket.ended, true);
  }
});

Deno.test("H2Stream reports a client reset through its signal and pending reads", async () => {
  const peer = new Peer();
  peer.request(1, "/a/b", false);
  const s = peer.streams[0]!;
  const signal = s.signal;
  const read = s.read();
  peer.send(encodeFrame(FrameType.rstStream, 0, 1, Uint8Array.of(0, 0, 0, 8)));
  await assert.rejects(read);
  assert.equal(signal.aborted, true);
  assert.equal(s.closed, true);
  assert.equal(peer.conn.streamCount, 0);
});
