/**
 * Both ttrpc servers under a flood from a client that writes requests and never reads its replies
 * (issue 14 item 4): the daemon's `<address>.ttrpc` events socket and Berth's shim. Each must stop
 * reading from that client and cut it off, hold its resident memory under idle + 64 MiB, answer another
 * client within 200 ms meanwhile, and give the memory back once the attacker has gone.
 */

import assert from "node:assert/strict";
import { encodeFrame, MessageType } from "../src/ttrpc/frame.ts";
import { encodeRequest } from "../src/ttrpc/messages.ts";
import { type Target, underAttack, withEventsSocket, withShim } from "./helpers/ttrpc_attack.ts";

const FLOOD_FRAMES = 300_000;
/** The attack ends here at the latest, cut off or not (before the fix it was never cut off). */
const ATTACK_MS = 20_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** FLOOD_FRAMES copies of the target's probe call, on stream ids 1, 3, 5, … as a client must number them. */
function flood(call: Target["call"]): Uint8Array {
  const body = encodeRequest({ ...call, timeoutNano: 0n });
  const frame = encodeFrame(1, MessageType.request, 0, body);
  const out = new Uint8Array(frame.length * FLOOD_FRAMES);
  const view = new DataView(out.buffer);
  for (let i = 0; i < FLOOD_FRAMES; i++) {
    out.set(frame, frame.length * i);
    view.setUint32(frame.length * i + 4, 2 * i + 1);
  }
  return out;
}

/**
 * Writes `bytes` to `path` in 64 KiB pieces without ever reading, until all is written, the server cuts
 * the connection, or ATTACK_MS pass; returns whether the server cut it off.
 */
async function neverReads(path: string, bytes: Uint8Array): Promise<boolean> {
  const conn = await Deno.connect({ transport: "unix", path });
  const deadline = Date.now() + ATTACK_MS;
  let cut = false;
  try {
    for (let at = 0; at < bytes.length && Date.now() < deadline;) {
      const piece = bytes.subarray(at, at + (64 << 10));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const wrote = await Promise.race([
        conn.write(piece).catch(() => -1),
        new Promise<number>((r) => timer = setTimeout(() => r(0), Math.max(1, deadline - Date.now()))),
      ]);
      clearTimeout(timer);
      if (wrote < 0) {
        cut = true;
        break;
      }
      at += wrote;
      // Pause a millisecond: this process also times the probe calls (see h2_limits_test.ts).
      await sleep(1);
    }
  } finally {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
  return cut;
}

async function floodNeverRead(t: Target): Promise<void> {
  const { result: cut } = await underAttack(t, () => neverReads(t.path, flood(t.call)));
  assert.ok(cut, "the server cut off a client that read no reply");
}

Deno.test({
  name: "ttrpc: the daemon's events socket cuts off a client that floods Forward and never reads",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => withEventsSocket(floodNeverRead),
});

Deno.test({
  name: "ttrpc: Berth's shim cuts off a client that floods Task.State and never reads",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => withShim(floodNeverRead),
});
