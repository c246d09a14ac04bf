import assert from "node:assert/strict";
import { ConnSocket } from "./conn_socket.ts";

/** A ConnSocket over an accepted unix connection, and the client end as a plain Deno.Conn. */
async function pair(): Promise<
  { socket: ConnSocket; peer: Deno.Conn; [Symbol.asyncDispose](): Promise<void> }
> {
  const dir = await Deno.makeTempDir({ prefix: "berth-connsocket-" });
  const path = `${dir}/s.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const [server, peer] = await Promise.all([listener.accept(), Deno.connect({ transport: "unix", path })]);
  listener.close();
  const socket = new ConnSocket(server);
  return {
    socket,
    peer,
    async [Symbol.asyncDispose]() {
      socket.destroy();
      try {
        peer.close();
      } catch { /* closed by the test */ }
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(64 << 10);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    parts.push(buf.slice(0, n));
  }
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function pattern(size: number, seed: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

Deno.test("ConnSocket delivers what the peer writes as data events, then end and close", async () => {
  await using p = await pair();
  const got: number[] = [];
  const events: string[] = [];
  p.socket.on("data", (chunk) => got.push(...chunk));
  p.socket.on("end", () => events.push("end"));
  p.socket.on("error", () => events.push("error"));
  const closed = new Promise<void>((r) => p.socket.on("close", () => r()));
  await p.peer.write(new Uint8Array([1, 2, 3]));
  await p.peer.write(new Uint8Array([4, 5]));
  p.peer.close();
  await closed;
  assert.deepEqual(got, [1, 2, 3, 4, 5]);
  // A peer that goes away is a close, not an error.
  assert.deepEqual(events, ["end"]);
  assert.equal(p.socket.destroyed, true);
  assert.equal(p.socket.writable, false);
});

Deno.test("ConnSocket holds what arrives while paused until resume", async () => {
  await using p = await pair();
  const got: number[] = [];
  p.socket.on("data", (chunk) => got.push(...chunk));
  p.socket.pause();
  await p.peer.write(new Uint8Array([7, 8, 9]));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(got, [], "no data event while paused");
  p.socket.resume();
  assert.deepEqual(got, [7, 8, 9], "the held chunk comes with resume");
  await p.peer.write(new Uint8Array([10]));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(got, [7, 8, 9, 10]);
});

Deno.test("ConnSocket asks for a drain past its high-water mark and delivers every byte in order", async () => {
  await using p = await pair();
  const chunks = Array.from({ length: 64 }, (_, i) => pattern(16 << 10, i));
  const received = readAll(p.peer);
  let refused = 0;
  for (const c of chunks) {
    if (!p.socket.write(c)) {
      refused++;
      await new Promise<void>((r) => p.socket.once("drain", r));
    }
  }
  assert.ok(refused > 0, "1 MiB written at once must meet backpressure");
  const closed = new Promise<void>((r) => p.socket.on("close", () => r()));
  p.socket.end();
  assert.equal(p.socket.writable, false);
  const all = await received;
  await closed;
  assert.equal(all.length, 64 * (16 << 10));
  for (let i = 0; i < chunks.length; i++) {
    assert.deepEqual(all.subarray(i * (16 << 10), (i + 1) * (16 << 10)), chunks[i], `chunk ${i}`);
  }
});

Deno.test("ConnSocket destroy drops queued writes and closes once", async () => {
  await using p = await pair();
  let closes = 0;
  p.socket.on("close", () => closes++);
  p.socket.write(pattern(1 << 20, 1));
  p.socket.destroy();
  p.socket.destroy();
  assert.equal(closes, 1);
  assert.equal(p.socket.write(new Uint8Array([1])), false);
  // The peer sees the end of the stream (whatever part of the write got out before it).
  const got = await readAll(p.peer);
  assert.ok(got.length <= 1 << 20);
});
