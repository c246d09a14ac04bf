import assert from "node:assert/strict";
import { SpdyConnection, type SpdyConnectionOptions, type SpdyTransport } from "./connection.ts";
import {
  ControlType,
  encodeData,
  encodePing,
  encodeSettings,
  encodeSynStream,
  encodeWindowUpdate,
  GoawayStatus,
  RstStatus,
  Setting,
} from "./frames.ts";
import { encodeHeaderBlock, HeaderCompressor } from "./header_block.ts";
import type { SpdyStream } from "./stream.ts";
import { isControl, type PeerFrame, TestPeer } from "./test_peer.ts";

interface Harness {
  readonly peer: TestPeer;
  readonly server: SpdyConnection;
  /** Streams the server accepted, in order. */
  readonly streams: SpdyStream[];
}

/** A server session on a real loopback connection, and a test peer on its other end. */
async function withSession(
  options: Partial<SpdyConnectionOptions>,
  body: (h: Harness) => Promise<void>,
  peerOptions: { read?: boolean } = {},
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const peer = await TestPeer.connect(listener.addr.port, peerOptions);
  const conn = await accepted;
  listener.close();
  const streams: SpdyStream[] = [];
  const server = new SpdyConnection(conn, {
    onStream: (s) => {
      streams.push(s);
      return true;
    },
    ...options,
  });
  try {
    await body({ peer, server, streams });
  } finally {
    server.destroy();
    await server.closed;
    await peer.close();
  }
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  let out = "";
  for await (const chunk of stream) out += text(chunk);
  return out;
}

const frameType = (f: PeerFrame) => f.kind === "control" ? f.frame.type : "data";

Deno.test("SpdyConnection announces its stream limit and initial window in SETTINGS first", async () => {
  await withSession({ limits: { maxStreams: 7, streamBufferBytes: 100_000 } }, async ({ peer }) => {
    const first = await peer.next();
    assert.ok(isControl(first, ControlType.settings));
    assert.deepEqual(
      first.kind === "control" && first.frame.type === ControlType.settings && first.frame.entries,
      [
        [Setting.maxConcurrentStreams, 7],
        [Setting.initialWindowSize, 100_000],
      ],
    );
  });
});

Deno.test("SpdyConnection replies to the streams it accepts and refuses the others", async () => {
  await withSession({ onStream: (s) => s.header("streamType") === "stdout" }, async ({ peer }) => {
    await peer.synStream(1, { streamType: "stdout" });
    await peer.synStream(3, { streamType: "bogus" });
    const reply = await peer.until((f) => isControl(f, ControlType.synReply));
    assert.ok(isControl(reply, ControlType.synReply, 1));
    const rst = await peer.until((f) => isControl(f, ControlType.rstStream));
    assert.deepEqual(rst.kind === "control" && rst.frame, {
      type: ControlType.rstStream,
      streamId: 3,
      status: RstStatus.refusedStream,
    });
  });
});

Deno.test("SpdyConnection carries data both ways and half-closes each direction on its own", async () => {
  await withSession({}, async ({ peer, streams }) => {
    await peer.synStream(1, { streamType: "stdin" });
    await peer.data(1, "hello ");
    await peer.data(1, "world", true);
    await peer.until((f) => isControl(f, ControlType.synReply, 1));
    const stream = streams[0]!;
    assert.equal(await readAll(stream.readable), "hello world");
    // The peer's half is closed; this side's is still open.
    await stream.write(new TextEncoder().encode("echo"));
    await stream.end();
    assert.equal(text(await peer.readStream(1)), "echo");
  });
});

/**
 * A transport whose reads and writes complete when the test says: it can put a frame's arrival at any
 * number of microtasks after a write's completion.
 */
class ScriptedTransport implements SpdyTransport {
  readonly written: Uint8Array[] = [];
  #write: { bytes: Uint8Array; resolve: (n: number) => void } | undefined;
  #read: { buf: Uint8Array; resolve: (n: number | null) => void } | undefined;

  get writing(): boolean {
    return this.#write !== undefined;
  }

  write(bytes: Uint8Array): Promise<number> {
    return new Promise((resolve) => this.#write = { bytes: bytes.slice(), resolve });
  }

  read(buf: Uint8Array): Promise<number | null> {
    return new Promise((resolve) => this.#read = { buf, resolve });
  }

  completeWrite(): void {
    const w = this.#write!;
    this.#write = undefined;
    this.written.push(w.bytes);
    w.resolve(w.bytes.length);
  }

  deliver(bytes: Uint8Array): void {
    const r = this.#read!;
    this.#read = undefined;
    r.buf.set(bytes);
    r.resolve(bytes.length);
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.#read?.resolve(null);
    this.#read = undefined;
  }
}

Deno.test("SpdyConnection writes a frame queued just as the previous write completes", async () => {
  // Once, a frame queued in the few microtasks between a write's end and the writer going idle waited
  // for the next frame after it: an exec's status came with spdystream's next PING, 5 s late.
  const peerHeaders = new HeaderCompressor();
  const tick = () => new Promise((r) => setTimeout(r, 2));
  try {
    const empty = encodeHeaderBlock([]);
    const syn1 = encodeSynStream({ streamId: 1, block: await peerHeaders.compress(empty) });
    const syn3 = encodeSynStream({ streamId: 3, block: await peerHeaders.compress(empty) });
    for (let hops = 0; hops < 16; hops++) {
      const transport = new ScriptedTransport();
      const streams: SpdyStream[] = [];
      const server = new SpdyConnection(transport, { onStream: (s) => streams.push(s) > 0 });
      try {
        // Two streams, as an exec's stdout and stderr: the frames of one stream wait on each other anyway.
        transport.deliver(new Uint8Array([...syn1, ...syn3]));
        // SETTINGS, WINDOW_UPDATE and the SYN_REPLYs leave; then the writer is idle.
        for (let idle = 0; idle < 3; idle = transport.writing ? 0 : idle + 1) {
          if (transport.writing) transport.completeWrite();
          await tick();
        }
        const first = streams[0]!.write(new Uint8Array([1]));
        await tick();
        // Queued before the write's completion, each hop of this chain runs ahead of the writer's.
        const second = (async () => {
          for (let i = 0; i < hops; i++) await Promise.resolve();
          await streams[1]!.write(new Uint8Array([2]));
        })();
        // Reported by the assertion below, not as an unhandled rejection at destroy().
        first.catch(() => {});
        second.catch(() => {});
        transport.completeWrite();
        await tick();
        assert.ok(transport.writing, `data queued ${hops} microtasks after a write's end is being written`);
        transport.completeWrite();
        await Promise.all([first, second]);
      } finally {
        server.destroy();
        await server.closed;
      }
    }
  } finally {
    peerHeaders.close();
  }
});

Deno.test("SpdyConnection answers the client's PINGs", async () => {
  await withSession({}, async ({ peer }) => {
    await peer.write(encodePing(5));
    const pong = await peer.until((f) => isControl(f, ControlType.ping));
    assert.deepEqual(pong.kind === "control" && pong.frame, { type: ControlType.ping, id: 5 });
  });
});

Deno.test("SpdyConnection refuses streams beyond maxStreams and accepts again once one closes", async () => {
  await withSession({ limits: { maxStreams: 2 } }, async ({ peer, streams }) => {
    await peer.synStream(1, {});
    await peer.synStream(3, {});
    await peer.synStream(5, {});
    const rst = await peer.until((f) => isControl(f, ControlType.rstStream));
    assert.deepEqual(rst.kind === "control" && rst.frame, {
      type: ControlType.rstStream,
      streamId: 5,
      status: RstStatus.refusedStream,
    });
    assert.equal(streams.length, 2);
    streams[0]!.reset();
    await peer.synStream(7, {});
    await peer.until((f) => isControl(f, ControlType.synReply, 7));
  });
});

Deno.test("SpdyConnection ends the session on a header block that inflates past its limit", async () => {
  await withSession({ limits: { maxHeaderBlockBytes: 4096 } }, async ({ peer, streams }) => {
    await peer.synStream(1, { "x-big": "a".repeat(10_000) });
    const frames = await peer.closed();
    const goaway = frames.find((f) => isControl(f, ControlType.goaway));
    assert.ok(goaway?.kind === "control" && goaway.frame.type === ControlType.goaway);
    assert.equal(goaway.frame.status, GoawayStatus.protocolError);
    assert.equal(streams.length, 0);
  });
});

Deno.test("SpdyConnection ends the session on a control frame over its size limit", async () => {
  await withSession({ limits: { maxControlFrameBytes: 1024 } }, async ({ peer, server }) => {
    await peer.write(encodeSynStream({ streamId: 1, block: new Uint8Array(2000) }));
    await peer.closed();
    assert.match(String(server.signal.reason), /Control frame of 2010 bytes exceeds the limit of 1024/);
  });
});

Deno.test("SpdyConnection ends the session when stream ids go backwards", async () => {
  await withSession({}, async ({ peer, server }) => {
    await peer.synStream(5, {});
    await peer.synStream(3, {});
    await peer.closed();
    assert.match(String(server.signal.reason), /SYN_STREAM for stream 3 after 5/);
  });
});

Deno.test("SpdyConnection resets data sent on a stream that was never opened", async () => {
  await withSession({}, async ({ peer }) => {
    await peer.data(9, "stray");
    const rst = await peer.until((f) => isControl(f, ControlType.rstStream));
    assert.deepEqual(rst.kind === "control" && rst.frame, {
      type: ControlType.rstStream,
      streamId: 9,
      status: RstStatus.invalidStream,
    });
  });
});

Deno.test("SpdyConnection ends a session idle for longer than idleTimeoutMs", async () => {
  await withSession({ limits: { idleTimeoutMs: 200 } }, async ({ peer, server }) => {
    const started = Date.now();
    await peer.closed(3000);
    assert.ok(Date.now() - started >= 150);
    assert.match(String(server.signal.reason), /idle for 200 ms/);
  });
});

Deno.test("SpdyConnection ends the session when the peer does not read what it writes", async () => {
  await withSession({ limits: { writeStallTimeoutMs: 300 } }, async ({ peer, server, streams }) => {
    await peer.synStream(1, {});
    const deadline = Date.now() + 10_000;
    while (streams.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const chunk = new Uint8Array(1 << 20);
    // Loopback buffers hold a few MiB; past them every write waits on a peer that never reads.
    await assert.rejects(async () => {
      while (Date.now() < deadline) await streams[0]!.write(chunk);
    });
    assert.match(String(server.signal.reason), /read nothing for 300 ms/);
  }, { read: false });
});

Deno.test("SpdyConnection stops reading while a stream's buffer is full, and reads on as it drains", async () => {
  await withSession({ limits: { streamBufferBytes: 64 * 1024 } }, async ({ peer, streams }) => {
    await peer.synStream(1, {});
    await peer.until((f) => isControl(f, ControlType.synReply, 1));
    await peer.data(1, new Uint8Array(200 * 1024));
    await peer.write(encodePing(7));
    // The PING waits behind data nobody reads.
    await assert.rejects(peer.until((f) => isControl(f, ControlType.ping), 300), /No frame within/);
    const reader = streams[0]!.readable.getReader();
    let got = 0;
    while (got < 200 * 1024) got += (await reader.read()).value!.length;
    reader.releaseLock();
    await peer.until((f) => isControl(f, ControlType.ping));
  });
});

Deno.test("SpdyConnection sends WINDOW_UPDATEs as the consumer reads", async () => {
  await withSession({ limits: { streamBufferBytes: 64 * 1024 } }, async ({ peer, streams }) => {
    await peer.synStream(1, {});
    await peer.until((f) => isControl(f, ControlType.synReply, 1));
    await peer.data(1, new Uint8Array(40 * 1024));
    const reader = streams[0]!.readable.getReader();
    let got = 0;
    while (got < 40 * 1024) got += (await reader.read()).value!.length;
    reader.releaseLock();
    const update = await peer.until((f) => isControl(f, ControlType.windowUpdate, 1));
    assert.ok(update.kind === "control" && update.frame.type === ControlType.windowUpdate);
    assert.equal(update.frame.delta, 40 * 1024);
  });
});

Deno.test("SpdyConnection ignores windows from a peer that never sent one (spdystream)", async () => {
  await withSession({}, async ({ peer, streams }) => {
    await peer.synStream(1, {});
    await peer.until((f) => isControl(f, ControlType.synReply, 1));
    // Four times SPDY's initial 64 KiB window, with no WINDOW_UPDATE from the peer.
    await streams[0]!.write(new Uint8Array(256 * 1024));
    await streams[0]!.end();
    assert.equal((await peer.readStream(1)).length, 256 * 1024);
  });
});

Deno.test("SpdyConnection waits on the send window of a peer that does flow control", async () => {
  await withSession({}, async ({ peer, streams }) => {
    await peer.write(encodeSettings([[Setting.initialWindowSize, 1000]]));
    await peer.synStream(1, {});
    await peer.until((f) => isControl(f, ControlType.synReply, 1));
    const written = streams[0]!.write(new Uint8Array(5000)).then(() => streams[0]!.end());
    const first = await peer.until((f) => f.kind === "data");
    assert.equal(first.kind === "data" && first.data.length, 1000);
    await assert.rejects(peer.until((f) => f.kind === "data", 300), /No frame within/);
    await peer.write(encodeWindowUpdate(1, 4000));
    assert.equal((await peer.readStream(1)).length, 4000);
    await written;
  });
});

Deno.test("SpdyConnection.close() gives up on a peer that does not hang up after closeTimeoutMs", async () => {
  await withSession({ limits: { closeTimeoutMs: 300 } }, async ({ peer, server }) => {
    const started = Date.now();
    await server.close();
    assert.ok(Date.now() - started >= 250);
    assert.match(String(server.signal.reason), /did not hang up/);
    await peer.closed();
  });
});

Deno.test("SpdyConnection.close() resets open streams, sends GOAWAY and ends when the peer hangs up", async () => {
  await withSession({}, async ({ peer, server, streams }) => {
    await peer.synStream(1, {});
    await peer.until((f) => isControl(f, ControlType.synReply, 1));
    const started = Date.now();
    const closing = server.close();
    const frames = await peer.closed();
    const ending = frames.map(frameType).filter((t) =>
      t !== ControlType.settings && t !== ControlType.windowUpdate
    );
    assert.deepEqual(ending, [ControlType.rstStream, ControlType.goaway]);
    // The peer saw the end of file after GOAWAY; it hangs up, as spdystream does.
    peer.conn.close();
    await closing;
    assert.ok(Date.now() - started < 2000, "close() waited for its timeout instead of the peer");
    assert.ok(streams[0]!.failure);
  });
});

Deno.test("SpdyConnection keeps one header context across streams, as the peer's compressor does", async () => {
  await withSession({}, async ({ peer, streams }) => {
    for (let id = 1; id <= 21; id += 2) await peer.synStream(id, { streamType: `s${id}`, port: "80" });
    await peer.until((f) => isControl(f, ControlType.synReply, 21));
    assert.deepEqual(
      streams.map((s) => s.header("streamtype")),
      [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21].map((i) => `s${i}`),
    );
  });
});

Deno.test("SpdyConnection reads blocks compressed by another context as a session error", async () => {
  await withSession({}, async ({ peer, server }) => {
    // A second compressor: its first block starts a new zlib stream inside the session's one.
    await peer.synStream(1, {});
    const other = new HeaderCompressor();
    try {
      await peer.write(encodeSynStream({ streamId: 3, block: await other.compress(encodeHeaderBlock([])) }));
    } finally {
      other.close();
    }
    await peer.closed();
    assert.match(String(server.signal.reason), /header block/i);
  });
});

/** A small seeded PRNG (mulberry32): the fuzz cases are the same on every run. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("SpdyConnection ends every session cleanly on mangled frames (fuzz, 300 seeded cases)", async () => {
  const limits = {
    maxHeaderBlockBytes: 4096,
    maxControlFrameBytes: 4096,
    maxDataFrameBytes: 65536,
    closeTimeoutMs: 500,
  };
  for (let seed = 1; seed <= 300; seed++) {
    const rand = prng(seed);
    const int = (n: number) => Math.floor(rand() * n);
    const peerHeaders = new HeaderCompressor();
    const frames: Uint8Array[] = [];
    try {
      for (let i = 0, n = 1 + int(8); i < n; i++) {
        const id = 1 + 2 * int(4);
        switch (int(6)) {
          case 0:
            frames.push(encodeSynStream({
              streamId: id,
              flags: int(4),
              block: await peerHeaders.compress(
                encodeHeaderBlock([["streamtype", "data"], ["port", String(int(70000))]]),
              ),
            }));
            break;
          case 1:
            frames.push(encodeData(id, new Uint8Array(int(3000)), { fin: rand() < 0.3 }));
            break;
          case 2:
            frames.push(encodeWindowUpdate(int(6), int(0x7fffffff)));
            break;
          case 3:
            frames.push(encodeSettings([[int(9), int(0xffffffff)]]));
            break;
          default: {
            // A valid-looking control header over random bytes, of a random type.
            const body = Uint8Array.from({ length: int(64) }, () => int(256));
            const f = encodePing(1 + int(100));
            const out = new Uint8Array(8 + body.length);
            out.set(f.subarray(0, 8));
            out[3] = int(12);
            out[4] = int(4);
            out[5] = 0;
            out[6] = body.length >> 8;
            out[7] = body.length & 0xff;
            out.set(body, 8);
            frames.push(out);
          }
        }
      }
    } finally {
      peerHeaders.close();
    }
    const wire = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    frames.reduce((at, f) => (wire.set(f, at), at + f.length), 0);
    // Bit flips in one case out of three.
    if (rand() < 0.33) { for (let i = 0; i < 3; i++) wire[int(wire.length)]! ^= 1 << int(8); }
    await withSession({ limits }, async ({ peer, server, streams }) => {
      await peer.write(wire).catch(() => {});
      for (const s of streams) s.readable.cancel().catch(() => {});
      peer.conn.close();
      const ended = await Promise.race([
        server.closed.then(() => true),
        new Promise((r) => setTimeout(() => r(false), 3000)),
      ]);
      assert.ok(ended, `case ${seed}: the session did not end`);
    });
  }
});
