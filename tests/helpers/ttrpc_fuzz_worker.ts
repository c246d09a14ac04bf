/**
 * The fuzzing client of tests/ttrpc_fuzz_test.ts, run in a worker so that building and checking its
 * frames never delays the probe the test times on its own thread. It opens `connections` connections to
 * a ttrpc server, `concurrency` at a time, each with frames from a generator seeded with `seed` and the
 * connection's index, and answers `{ ok: true }` or `{ error }` naming the first connection that failed.
 */

import assert from "node:assert/strict";
import {
  encodeFrame,
  FrameReader,
  HEADER_LENGTH,
  MAX_MESSAGE_LENGTH,
  MessageType,
} from "../../src/ttrpc/frame.ts";
import {
  decodeResponse,
  encodeRequest,
  MAX_METADATA_SIZE,
  type TtrpcRequest,
} from "../../src/ttrpc/messages.ts";
import { Code } from "../../src/ttrpc/mod.ts";
import type { Target } from "./ttrpc_attack.ts";

/** What the worker is told: the target, less what cannot cross to a worker. */
export interface FuzzJob {
  readonly target: FuzzTarget;
  readonly seed: number;
  readonly connections: number;
  readonly concurrency: number;
}
export type FuzzTarget = Pick<Target, "path" | "call" | "callCode" | "safeMethods">;
export type FuzzResult = { readonly ok: true } | { readonly error: string };

/** Every connection is answered in full, or ended, within this. */
const CONNECTION_MS = 10_000;

/** mulberry32: small, fast, and the same sequence for the same seed. */
class Rand {
  #a: number;

  constructor(seed: number) {
    this.#a = seed >>> 0;
  }

  next(): number {
    this.#a = (this.#a + 0x6d2b79f5) >>> 0;
    let t = this.#a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const v = (this.next() * 4294967296) >>> 0;
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return out;
  }

  /** n printable ASCII characters. */
  text(n: number): string {
    const b = this.bytes(n);
    for (let i = 0; i < n; i++) b[i] = 0x21 + b[i]! % 94;
    return new TextDecoder().decode(b);
  }
}

/**
 * What a frame must bring back: nothing, or a reply on `id` whose code is `code` (any code when
 * undefined, any but OK when `notOk`).
 */
interface Expect {
  readonly id: number;
  readonly code?: number;
  readonly notOk?: boolean;
}

interface Step {
  readonly kind: string;
  readonly bytes: Uint8Array;
  readonly reply?: Expect;
}

/** A connection's frames, and what the server's stream-id rule makes of them. */
class Plan {
  readonly steps: Step[] = [];
  #next = 1;
  #lastRequest = 0;

  constructor(readonly rand: Rand, readonly target: FuzzTarget) {}

  /** A fresh odd stream id, above every id used so far, as a client must number requests. */
  freshId(): number {
    const id = this.#next;
    this.#next += 2 * this.rand.int(1, 3);
    return id;
  }

  /** A request frame on a fresh id, expected to get `reply` (its id filled in). */
  request(kind: string, body: Uint8Array, reply: Omit<Expect, "id">, flags = 0): void {
    const id = this.#lastRequest = this.freshId();
    this.steps.push({
      kind,
      bytes: encodeFrame(id, MessageType.request, flags, body),
      reply: { id, ...reply },
    });
  }

  /** The highest id a request was sent on (0: none yet); the server refuses requests at or below it. */
  get lastRequest(): number {
    return this.#lastRequest;
  }
}

function envelope(parts: Partial<TtrpcRequest>): Uint8Array {
  return encodeRequest({
    service: "",
    method: "",
    payload: new Uint8Array(),
    timeoutNano: 0n,
    metadata: {},
    ...parts,
  });
}

/** One well-framed, possibly malformed, frame with the reply the server owes it. */
const frames: ReadonlyArray<readonly [weight: number, add: (p: Plan) => void]> = [
  [4, (p) => p.request("probe", envelope({ ...p.target.call }), { code: p.target.callCode })],
  [3, (p) =>
    p.request(
      "unknown service",
      envelope({ ...p.target.call, service: `fuzz.${p.rand.text(p.rand.int(0, 40))}` }),
      { code: Code.unimplemented },
    )],
  [1, (p) => {
    // containerd echoes the name in the status: a long one must not cost the connection.
    const name = `fuzz.${p.rand.text(8).repeat(p.rand.int(8 << 10, (MAX_MESSAGE_LENGTH >> 3) - 128))}`;
    p.request("long service name", envelope({ service: name, method: "M" }), { code: Code.unimplemented });
  }],
  [3, (p) =>
    p.request(
      "unknown method",
      envelope({ ...p.target.call, method: p.rand.text(p.rand.int(0, 40)) }),
      { code: Code.unimplemented },
    )],
  [4, (p) =>
    p.request(
      "garbage payload",
      envelope({
        ...p.target.call,
        method: p.rand.pick(p.target.safeMethods),
        payload: p.rand.bytes(p.rand.int(1, 300)),
      }),
      {},
    )],
  [4, (p) => p.request("garbage envelope", p.rand.bytes(p.rand.int(1, 600)), { notOk: true })],
  [1, (p) => p.request("empty envelope", new Uint8Array(), { code: Code.unimplemented })],
  [2, (p) => {
    const timeoutNano = p.rand.pick([1n, 1000n, -1n, (1n << 63n) - 1n, -(1n << 63n)]);
    p.request("odd deadline", envelope({ ...p.target.call, timeoutNano }), {});
  }],
  [
    2,
    (p) =>
      p.request("odd flags", envelope({ ...p.target.call }), { code: p.target.callCode }, p.rand.int(0, 255)),
  ],
  [2, (p) => {
    // Keys that name Object.prototype members are ordinary metadata keys.
    const metadata = Object.assign(Object.create(null), p.target.call.metadata);
    for (const key of ["__proto__", "constructor", "toString", "hasOwnProperty"]) {
      metadata[key] = [p.rand.text(8)];
    }
    p.request("prototype keys", envelope({ ...p.target.call, metadata }), { code: p.target.callCode });
  }],
  [1, (p) => {
    // Built as bytes (protobuf fields may be concatenated): the value or the pairs stay clear of the
    // server's bound on either side, so the answer is known.
    let body = envelope({ ...p.target.call });
    let code = p.target.callCode;
    const kind = p.rand.int(0, 3);
    if (kind === 0) {
      const value = p.rand.text(8).repeat(p.rand.int(512, 4 << 10)); // 4-32 KiB: allowed
      body = concat([body, envelope({ metadata: { "fuzz-value": [value] } })]);
    } else if (kind === 1) {
      const value = p.rand.text(8).repeat(p.rand.int(32 << 10, (MAX_MESSAGE_LENGTH >> 3) - 512));
      body = concat([body, envelope({ metadata: { "fuzz-big": [value] } })]);
      code = Code.resourceExhausted;
    } else {
      // Many small pairs (~37 bytes each as the server counts them): the most work per wire byte.
      const pair = envelope({ metadata: { [`k${p.rand.int(0, 9)}`]: ["v"] } });
      const allowed = Math.floor(MAX_METADATA_SIZE / (pair.length + 32)) - 4;
      const n = kind === 2 ? p.rand.int(1, allowed) : p.rand.int(2 * allowed, 300_000);
      body = concat([body, ...Array.from({ length: n }, () => pair)]);
      if (kind === 3) code = Code.resourceExhausted;
    }
    p.request("huge metadata", body, { code });
  }],
  [3, (p) => {
    const id = p.freshId();
    p.steps.push({
      kind: "data frame",
      bytes: encodeFrame(id, MessageType.data, p.rand.int(0, 7), p.rand.bytes(p.rand.int(0, 100))),
      reply: { id, code: Code.invalidArgument },
    });
  }],
  [3, (p) => {
    // Response frames and unknown types are ignored, as containerd's server ignores them.
    const id = p.freshId();
    const type = p.rand.pick([MessageType.response, 0, 4, p.rand.int(5, 255)]);
    p.steps.push({ kind: `type ${type}`, bytes: encodeFrame(id, type, 0, p.rand.bytes(p.rand.int(0, 100))) });
  }],
  [3, (p) => {
    const id = p.rand.pick([0, 2 * p.rand.int(0, 1 << 30)]);
    const type = p.rand.pick([MessageType.request, MessageType.data, MessageType.response, 9]);
    p.steps.push({
      kind: `even id ${id}`,
      bytes: encodeFrame(id, type, 0, envelope({ ...p.target.call })),
      reply: { id, code: Code.invalidArgument },
    });
  }],
  [3, (p) => {
    if (p.lastRequest === 0) p.request("probe", envelope({ ...p.target.call }), { code: p.target.callCode });
    const id = 2 * p.rand.int(0, (p.lastRequest - 1) / 2) + 1;
    p.steps.push({
      kind: `reused id ${id}`,
      bytes: encodeFrame(id, MessageType.request, 0, envelope({ ...p.target.call })),
      reply: { id, code: Code.invalidArgument },
    });
  }],
  [1, (p) => {
    // Declared and sent: the server skips the bytes and answers, keeping the connection (channel.go).
    const length = MAX_MESSAGE_LENGTH + p.rand.int(1, 64 << 10);
    const id = p.rand.int(0, 1000);
    const bytes = new Uint8Array(HEADER_LENGTH + length);
    bytes.set(encodeFrame(id, p.rand.pick([MessageType.request, MessageType.data, 7]), 0, new Uint8Array()));
    new DataView(bytes.buffer).setUint32(0, length);
    p.steps.push({ kind: "oversized", bytes, reply: { id, code: Code.resourceExhausted } });
  }],
];
const totalWeight = frames.reduce((n, [w]) => n + w, 0);

/** Bytes that leave the stream broken: the server must end the connection once the client stops sending. */
const breakers: ReadonlyArray<readonly [kind: string, make: (p: Plan, before: Uint8Array) => Uint8Array]> = [
  [
    "truncated header",
    (p) => encodeFrame(p.freshId(), MessageType.request, 0, new Uint8Array()).subarray(0, p.rand.int(1, 9)),
  ],
  [
    "truncated body",
    (p) =>
      encodeFrame(p.freshId(), MessageType.request, 0, p.rand.bytes(p.rand.int(2, 1 << 20))).subarray(0, -1),
  ],
  ["oversized, never sent", (p) => {
    const header = encodeFrame(p.freshId(), MessageType.request, 0, p.rand.bytes(p.rand.int(0, 1000)));
    new DataView(header.buffer).setUint32(0, p.rand.int(MAX_MESSAGE_LENGTH + 1, 0xffffffff));
    return header;
  }],
  ["random bytes", (p) => p.rand.bytes(p.rand.int(1, 64 << 10))],
  ["flipped bytes", (p, before) => {
    const out = before.slice();
    for (let i = p.rand.int(1, 8); i > 0 && out.length > 0; i--) {
      out[p.rand.int(0, out.length - 1)] = p.rand.int(0, 255);
    }
    return out;
  }],
];

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of parts) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`${what} after ${ms} ms`)), ms)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Connection `index`: a few frames from `frames` and, for two in five, bytes from `breakers` after
 * them. A well-framed connection must get exactly the replies its frames are owed (checked up to a
 * final marker request), a broken one must be ended by the server once the client half-closes.
 */
async function fuzzConnection(target: FuzzTarget, seed: number, index: number): Promise<void> {
  const plan = new Plan(new Rand(seed * 7919 + index), target);
  for (let n = plan.rand.int(1, 12); n > 0; n--) {
    let pick = plan.rand.next() * totalWeight;
    const [, add] = frames.find(([w]) => (pick -= w) < 0) ?? frames[0]!;
    add(plan);
  }
  const breaker = plan.rand.next() < 0.4 ? plan.rand.pick(breakers) : undefined;
  const framed = concat(plan.steps.map((s) => s.bytes));
  const bytes = breaker ? concat([framed, breaker[1](plan, framed)]) : framed;
  const kinds = [...plan.steps.map((s) => s.kind), ...(breaker ? [breaker[0]] : [])];
  const what = `Connection ${index} (BERTH_FUZZ_SEED=${seed}: ${kinds.join(", ")})`;

  const conn = await Deno.connect({ transport: "unix", path: target.path });
  const reader = new FrameReader(conn);
  try {
    if (breaker) {
      const sent = (async () => {
        await writeAll(conn, bytes);
        await conn.closeWrite();
      })().catch(() => {}); // the server may end it first
      await withDeadline(
        (async () => {
          while (await reader.next().catch(() => null) !== null) { /* replies to the frames before */ }
        })(),
        CONNECTION_MS,
        `${what} was not ended`,
      );
      await sent;
      return;
    }
    const owed = plan.steps.flatMap((s) => s.reply ? [s.reply] : []);
    const marker = plan.freshId();
    const sent = writeAll(conn, bytes);
    sent.catch(() => {}); // awaited below, unless a failed reply ends the connection first
    await withDeadline(
      (async () => {
        let markerSent: Promise<void> | undefined;
        for (;;) {
          if (owed.length === 0 && !markerSent) {
            // Everything owed came back: one more request proves nothing else is on its way.
            await sent;
            markerSent = writeAll(
              conn,
              encodeFrame(marker, MessageType.request, 0, envelope({ service: "marker" })),
            );
          }
          const frame = await reader.next();
          assert.ok(frame?.data, `${what} ended before its replies`);
          assert.equal(frame.type, MessageType.response, `${what} got a frame of type ${frame.type}`);
          const { status } = decodeResponse(frame.data);
          const code = status?.code ?? 0;
          if (markerSent && frame.streamId === marker) {
            assert.equal(code, Code.unimplemented, `${what}: the marker`);
            return;
          }
          const at = owed.findIndex((e) =>
            e.id === frame.streamId && (e.code === undefined || e.code === code) && !(e.notOk && code === 0)
          );
          assert.ok(
            at >= 0,
            `${what} got an unexpected reply on stream ${frame.streamId}: ${code} ${status?.message}`,
          );
          owed.splice(at, 1);
        }
      })(),
      CONNECTION_MS,
      `${what} still owed ${owed.map((e) => e.id).join(", ")}`,
    );
  } finally {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at, at + (256 << 10)));
}

/** The job's connections, `concurrency` at a time; the first failure stops the rest. */
async function fuzz(job: FuzzJob): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < job.connections) await fuzzConnection(job.target, job.seed, next++);
  };
  const workers = Array.from({ length: job.concurrency }, worker);
  try {
    await Promise.all(workers);
  } finally {
    next = job.connections;
    await Promise.allSettled(workers);
  }
}

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<FuzzJob>) => void) | null;
  postMessage(m: FuzzResult): void;
};
scope.onmessage = (e) => {
  fuzz(e.data).then(
    () => scope.postMessage({ ok: true }),
    (err) => scope.postMessage({ error: err instanceof Error ? err.stack ?? err.message : String(err) }),
  );
};
