/**
 * The daemon's HTTP/2 server under attack, over its real unix socket: raw frames written by the test
 * (malformed frames, an HPACK bomb, a CONTINUATION flood, SETTINGS and PING floods from a client that
 * never reads, malformed header lists, rapid resets, 500 idle connections). Each attack must leave the
 * daemon answering `Version` within 200 ms while it runs, hold its resident memory under idle + 64 MiB,
 * and give that memory back (within 16 MiB of idle) once the attacker has gone.
 */

import assert from "node:assert/strict";
import { startDaemon, type TestDaemon } from "./helpers/daemon.ts";
import type { BerthClient } from "../src/client/mod.ts";
import { concat } from "../src/h2/frame_writer.ts";
import {
  encodeFrame,
  encodeSettings,
  Flag,
  type Frame,
  FrameParser,
  FrameType,
  preface,
} from "../src/h2/frames.ts";
import { encodeHeaders, type HeaderField, HpackDecoder } from "../src/h2/hpack.ts";

const MiB = 1 << 20;
const versionPath = "/containerd.services.version.v1.Version/Version";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * Attackers pause a millisecond between writes: this process also times the `Version` calls, and Deno polls
 * its sockets for readiness only when it goes idle, so an attacker that never paused would delay the
 * answers it reads, not the daemon's.
 */
const breathe = () => sleep(1);

const ErrorCode = { protocol: 1, frameSize: 6, refusedStream: 7, cancel: 8, enhanceYourCalm: 11 };

/**
 * Anonymous resident memory of a process (heap, buffers), in bytes. Not VmRSS: an idle daemon hands its
 * executable's pages back (startup_pages.ts) and calls bring them back in, which no attack costs.
 */
function rss(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/RssAnon:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

/** A raw HTTP/2 client: writes whatever bytes it is given, reads frames only when asked to. */
class RawPeer {
  readonly conn: Deno.UnixConn;
  readonly frames: Frame[] = [];
  readonly #parser = new FrameParser(1 << 24);
  #reading: Promise<void> | undefined;
  #eof = false;
  #waiters: (() => void)[] = [];

  private constructor(conn: Deno.UnixConn) {
    this.conn = conn;
  }

  /** Connects and sends the preface and an empty SETTINGS (unless `handshake` is false). */
  static async open(address: string, options: { handshake?: boolean } = {}): Promise<RawPeer> {
    const conn = await Deno.connect({ transport: "unix", path: address });
    const peer = new RawPeer(conn);
    if (options.handshake !== false) await peer.write(preface, encodeSettings([]));
    return peer;
  }

  /** Writes; false once the daemon has closed the connection. */
  async write(...chunks: Uint8Array[]): Promise<boolean> {
    try {
      for (const c of chunks) for (let at = 0; at < c.length;) at += await this.conn.write(c.subarray(at));
      return true;
    } catch {
      return false;
    }
  }

  /** Starts reading frames (until EOF or a reset). */
  read(): void {
    this.#reading ??= (async () => {
      const buf = new Uint8Array(256 << 10);
      try {
        for (;;) {
          const n = await this.conn.read(buf);
          if (n === null) break;
          this.frames.push(...this.#parser.push(buf.slice(0, n)));
          this.#wake();
        }
      } catch { /* reset by the daemon */ }
      this.#eof = true;
      this.#wake();
    })();
  }

  get eof(): boolean {
    return this.#eof;
  }

  /** Waits until `done()` holds (checked as frames arrive) or `ms` pass; whether it held. */
  async until(done: () => boolean, ms = 3000): Promise<boolean> {
    this.read();
    const deadline = Date.now() + ms;
    while (!done()) {
      if (this.#eof || Date.now() > deadline) return done();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }

  find(type: number, streamId?: number): Frame | undefined {
    return this.frames.find((f) => f.type === type && (streamId === undefined || f.streamId === streamId));
  }

  close(): Promise<void> {
    try {
      this.conn.close();
    } catch { /* already closed */ }
    return this.#reading ?? Promise.resolve();
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}

const join = (parts: Uint8Array[]) => concat(parts, parts.reduce((n, p) => n + p.length, 0));

const code = (f: Frame | undefined) =>
  f ? new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(0) : -1;
const goawayCode = (f: Frame | undefined) =>
  f ? new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(4) : -1;

function requestFields(path = versionPath): HeaderField[] {
  return [
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", "localhost"],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
  ];
}

/** A whole unary Version call on `id`: HEADERS and one DATA frame with an empty message. */
function versionCall(id: number): Uint8Array[] {
  return [
    encodeFrame(FrameType.headers, Flag.endHeaders, id, encodeHeaders(requestFields())),
    encodeFrame(FrameType.data, Flag.endStream, id, new Uint8Array(5)),
  ];
}

/** The grpc-status of the call on stream `id`, once its trailers arrived. */
async function grpcStatus(peer: RawPeer, id: number): Promise<string | undefined> {
  const ended = () =>
    peer.frames.find((f) => f.type === FrameType.headers && f.streamId === id && f.flags & Flag.endStream);
  await peer.until(() => ended() !== undefined);
  const f = ended();
  if (!f) return undefined;
  // The daemon never indexes: a fresh decoder reads any of its blocks.
  return new HpackDecoder().decode(f.payload).find(([n]) => n === "grpc-status")?.[1];
}

/** Splits a header block into HEADERS and CONTINUATION frames of at most 16 KiB. */
function headerFrames(id: number, block: Uint8Array, flags = 0): Uint8Array[] {
  const out: Uint8Array[] = [];
  const max = 16384;
  for (let at = 0; at < block.length || at === 0; at += max) {
    const last = at + max >= block.length;
    const type = at === 0 ? FrameType.headers : FrameType.continuation;
    out.push(
      encodeFrame(
        type,
        (at === 0 ? flags : 0) | (last ? Flag.endHeaders : 0),
        id,
        block.subarray(at, at + max),
      ),
    );
  }
  return out;
}

/**
 * A request header block that adds one 4,000-byte entry to the HPACK table and then refers to it with
 * one-byte indexed fields until the block is `size` bytes: `size - 4k` references of 4 KB each.
 */
function hpackBomb(size: number): Uint8Array {
  // A Connect call: the universal handler is given every field as a request header.
  const head = encodeHeaders([...requestFields().slice(0, 4), ["content-type", "application/proto"]]);
  const value = "v".repeat(4000);
  // Literal with incremental indexing, new name "x" (RFC 7541 §6.2.1); 4000 = 127 + 3873 as a 7-bit prefix.
  const literal = Uint8Array.of(0x40, 1, 0x78, 0x7f, (3873 & 0x7f) | 0x80, 3873 >> 7);
  const block = new Uint8Array(size);
  block.set(head);
  block.set(literal, head.length);
  let at = head.length + literal.length;
  for (let i = 0; i < value.length; i++) block[at++] = 0x76;
  // Index 62: the newest dynamic entry.
  block.fill(0x80 | 62, at);
  return block;
}

/** What an attack gets: the daemon, and raw connections to it that are closed when the attack ends. */
interface Attack {
  d: TestDaemon;
  connect(options?: { handshake?: boolean }): Promise<RawPeer>;
}

/**
 * Starts a daemon, warms it up and takes its idle RSS; runs `attack` while sampling the daemon's RSS and
 * timing Version calls; closes the attacker's connections (even if the attack failed); then checks the
 * bounds: RSS under idle + 64 MiB and Version under 200 ms during the attack, RSS back within 16 MiB of
 * idle afterwards.
 */
async function attackDaemon(attack: (a: Attack) => Promise<void>): Promise<void> {
  await using d = await startDaemon();
  const client = d.client();
  for (let i = 0; i < 200; i++) await client.version.version({});
  // Let the idle collector run after start-up and the warm-up, then take the settled size.
  await sleep(1500);
  let idle = 0;
  for (let i = 0; i < 5; i++) {
    idle = Math.max(idle, rss(d.process.pid));
    await sleep(100);
  }
  const peers: RawPeer[] = [];
  const connect = async (options?: { handshake?: boolean }) => {
    const peer = await RawPeer.open(d.address, options);
    peers.push(peer);
    return peer;
  };
  try {
    await underAttack(d, client, idle, () => attack({ d, connect }));
  } finally {
    await Promise.all(peers.map((p) => p.close()));
  }
  await recovers(d, idle);
  assert.doesNotMatch(d.logs(), /Uncaught|panicked/);
}

async function underAttack(
  d: TestDaemon,
  client: BerthClient,
  idle: number,
  attack: () => Promise<void>,
): Promise<void> {
  const pid = d.process.pid;
  let stop = false;
  let peak = rss(pid);
  const latencies: number[] = [];
  const sampler = (async () => {
    while (!stop) {
      peak = Math.max(peak, rss(pid));
      await sleep(10);
    }
  })();
  const prober = (async () => {
    while (!stop) {
      const t0 = performance.now();
      // A call that fails (its deadline passed) counts with the time it took.
      await client.version.version({}, { timeoutMs: 5_000 }).catch(() => {});
      latencies.push(performance.now() - t0);
      await sleep(5);
    }
  })();
  try {
    await attack();
  } finally {
    stop = true;
    await Promise.all([sampler, prober]);
    peak = Math.max(peak, rss(pid));
    console.log(
      `  RSS idle ${mib(idle)}, peak ${mib(peak)}; Version worst ${Math.max(...latencies).toFixed(1)} ms` +
        ` over ${latencies.length} calls`,
    );
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  const worst = sorted[sorted.length - 1]!;
  const p90 = sorted[Math.floor(sorted.length * 0.9)]!;
  assert.ok(latencies.length > 0, "Version was called during the attack");
  assert.ok(peak < idle + 64 * MiB, `RSS peaked at ${mib(peak)}, idle ${mib(idle)}`);
  // 200 ms is the bound; on a CI machine whose two cores also run other test files, one call now and then
  // waits for the scheduler, not for the daemon: the bound holds for nine calls in ten, and no call may
  // take long enough to look like a stall.
  assert.ok(
    p90 < 200,
    `Version took ${p90.toFixed(0)} ms (p90) during the attack (${latencies.length} calls)`,
  );
  assert.ok(
    worst < 1000,
    `Version took ${worst.toFixed(0)} ms during the attack (${latencies.length} calls)`,
  );
}

/**
 * Waits (up to 30 s: the idle collector runs only once the daemon is quiet, which takes longer on a busy
 * machine) for the daemon's RSS to come back within 16 MiB of idle.
 */
async function recovers(d: TestDaemon, idle: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  let now = rss(d.process.pid);
  while (now >= idle + 16 * MiB && Date.now() < deadline) {
    await sleep(100);
    now = rss(d.process.pid);
  }
  assert.ok(now < idle + 16 * MiB, `RSS stayed at ${mib(now)} after the attack, idle ${mib(idle)}`);
}

Deno.test("HTTP/2 server: an HPACK bomb costs neither the event loop nor memory, and its connection stays usable", async () => {
  await attackDaemon(async ({ connect }) => {
    // Under the encoded limit but ~400 MB decoded: the stream is reset, the connection goes on.
    const peer = await connect();
    peer.read();
    let id = 1;
    for (let i = 0; i < 20; i++, id += 2) {
      await peer.write(...headerFrames(id, hpackBomb(100 << 10), Flag.endStream));
      assert.ok(await peer.until(() => peer.find(FrameType.rstStream, id) !== undefined), `RST_STREAM ${id}`);
      assert.equal(code(peer.find(FrameType.rstStream, id)), ErrorCode.frameSize);
    }
    await peer.write(...versionCall(id));
    assert.equal(await grpcStatus(peer, id), "0", "a call after the bombs is served");
    // The full 256 KiB bomb exceeds the encoded limit: the connection ends with GOAWAY.
    const big = await connect();
    await big.write(...headerFrames(1, hpackBomb(256 << 10), Flag.endStream));
    assert.ok(await big.until(() => big.eof), "the connection of the large bomb is closed");
    assert.ok(big.find(FrameType.goaway), "GOAWAY before the close");
  });
});

Deno.test("HTTP/2 server: a CONTINUATION flood ends in GOAWAY without buffering", async () => {
  // 1M empty CONTINUATION frames after a HEADERS without END_HEADERS: 9 MB on the wire.
  const count = 1_000_000;
  const flood = new Uint8Array(9 * count);
  for (let i = 0; i < count; i++) flood.set([0, 0, 0, FrameType.continuation, 0, 0, 0, 0, 1], 9 * i);
  await attackDaemon(async ({ connect }) => {
    const peer = await connect();
    await peer.write(encodeFrame(FrameType.headers, Flag.endStream, 1, encodeHeaders(requestFields())));
    peer.read();
    for (let at = 0; at < flood.length && !peer.eof; at += 256 << 10) {
      if (!await peer.write(flood.subarray(at, at + (256 << 10)))) break;
      await breathe();
    }
    assert.ok(await peer.until(() => peer.eof), "the daemon closes the connection");
    assert.equal(goawayCode(peer.find(FrameType.goaway)), ErrorCode.enhanceYourCalm);
  });
});

for (const kind of ["SETTINGS", "PING"] as const) {
  Deno.test(`HTTP/2 server: a ${kind} flood from a client that never reads is cut off`, async () => {
    const count = 300_000;
    const frame = kind === "SETTINGS"
      ? encodeFrame(FrameType.settings, 0, 0)
      : encodeFrame(FrameType.ping, 0, 0, new Uint8Array(8));
    const flood = new Uint8Array(frame.length * count);
    for (let i = 0; i < count; i++) flood.set(frame, frame.length * i);
    await attackDaemon(async ({ connect }) => {
      const peer = await connect();
      for (let at = 0; at < flood.length; at += 64 << 10) {
        if (!await peer.write(flood.subarray(at, at + (64 << 10)))) break;
        await breathe();
      }
      // Only now read: what the daemon queued, then the end of the connection.
      assert.ok(await peer.until(() => peer.eof, 5000), "the daemon closes the connection");
      const acks = peer.frames.filter((f) => f.type === frame[3]);
      assert.ok(acks.length < count / 2, `${acks.length} ACKs were queued for a client that does not read`);
    });
  });
}

Deno.test("HTTP/2 server: malformed header lists reset their stream with PROTOCOL_ERROR and the connection goes on", async () => {
  const base = requestFields();
  const cases: [string, HeaderField[]][] = [
    ["an upper-case name", [...base, ["X-Upper", "1"]]],
    ["a NUL in a name", [...base, ["x-n\0ul", "1"]]],
    ["a CR LF in a value", [...base, ["x-crlf", "a\r\nb"]]],
    ["a NUL in a value", [...base, ["x-nul", "a\0b"]]],
    ["a duplicated :path", [...base, [":path", versionPath]]],
    ["a pseudo-header after a regular one", [...base.slice(1), base[0]!]],
    ["an unknown pseudo-header", [...base, [":protocol-x", "1"]]],
    ["a response pseudo-header", [...base, [":status", "200"]]],
    ["a connection header", [...base, ["connection", "keep-alive"]]],
    ["a transfer-encoding header", [...base, ["transfer-encoding", "chunked"]]],
    ["te other than trailers", [...base.filter(([n]) => n !== "te"), ["te", "gzip"]]],
    ["no :path", base.filter(([n]) => n !== ":path")],
    ["no :method", base.filter(([n]) => n !== ":method")],
    ["an empty name", [...base, ["", "1"]]],
  ];
  await attackDaemon(async ({ connect }) => {
    const peer = await connect();
    peer.read();
    let id = 1;
    for (const [what, fields] of cases) {
      await peer.write(
        encodeFrame(FrameType.headers, Flag.endHeaders, id, encodeHeaders(fields)),
        encodeFrame(FrameType.data, Flag.endStream, id, new Uint8Array(5)),
      );
      assert.ok(
        await peer.until(() => peer.find(FrameType.rstStream, id) !== undefined),
        `RST_STREAM for ${what}`,
      );
      assert.equal(code(peer.find(FrameType.rstStream, id)), ErrorCode.protocol, what);
      assert.equal(peer.find(FrameType.headers, id), undefined, `no response for ${what}`);
      id += 2;
    }
    await peer.write(...versionCall(id));
    assert.equal(await grpcStatus(peer, id), "0", "a valid call on the same connection is served");
    assert.equal(peer.find(FrameType.goaway), undefined);
  });
});

Deno.test("HTTP/2 server: malformed frames from 200 connections end those connections, not the daemon", async () => {
  // A small seeded generator: the same frames every run.
  let seed = 0x9e3779b9;
  const rand = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => rand(256));
  const ids = [0, 1, 2, 3, 5, 0x7fffffff];
  await attackDaemon(async ({ connect }) => {
    for (let c = 0; c < 200; c++) {
      const peer = await connect();
      peer.read();
      const frames: Uint8Array[] = [];
      if (rand(2)) frames.push(...versionCall(1));
      for (let i = 0; i < 20; i++) {
        const type = rand(12);
        const payload = type === FrameType.headers || type === FrameType.continuation
          ? (rand(2) ? encodeHeaders(requestFields()).subarray(0, rand(60)) : bytes(rand(40)))
          : bytes([0, 4, 5, 6, 8, 8, 8, 4, 8][rand(9)]! + (rand(4) === 0 ? rand(20) : 0));
        frames.push(encodeFrame(type, rand(256), ids[rand(ids.length)]!, payload));
      }
      const wire = join(frames);
      // Flip a few bytes too: lengths and types that lie.
      for (let i = 0; i < rand(4); i++) wire[rand(wire.length)] = rand(256);
      await peer.write(wire);
      await breathe();
    }
    await sleep(200);
  });
});

Deno.test("HTTP/2 server: rapid resets and the concurrent-stream limit hold, and 500 idle connections cost little", async () => {
  await attackDaemon(async ({ connect }) => {
    // 20,000 calls opened and reset at once (CVE-2023-44487), in batches of 500.
    const reset = await connect();
    reset.read();
    let id = 1;
    for (let batch = 0; batch < 40 && !reset.eof; batch++) {
      const frames: Uint8Array[] = [];
      for (let i = 0; i < 500; i++, id += 2) {
        frames.push(
          ...versionCall(id),
          encodeFrame(FrameType.rstStream, 0, id, Uint8Array.of(0, 0, 0, ErrorCode.cancel)),
        );
      }
      await reset.write(join(frames));
      await breathe();
    }
    // The limit of concurrent streams: 1,000 open calls, then one too many.
    const open = await connect();
    open.read();
    const frames: Uint8Array[] = [];
    for (let i = 0; i <= 1000; i++) {
      frames.push(encodeFrame(FrameType.headers, Flag.endHeaders, 2 * i + 1, encodeHeaders(requestFields())));
    }
    await open.write(join(frames));
    assert.ok(
      await open.until(() => open.find(FrameType.rstStream, 2001) !== undefined),
      "stream 1001 refused",
    );
    assert.equal(code(open.find(FrameType.rstStream, 2001)), ErrorCode.refusedStream);
    assert.equal(open.frames.filter((f) => f.type === FrameType.rstStream).length, 1);
    // 500 idle connections.
    for (let i = 0; i < 500; i++) await connect();
    await sleep(300);
  });
});
