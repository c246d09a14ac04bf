/**
 * Both ttrpc servers (the daemon's `<address>.ttrpc` events socket and Berth's shim) under malformed
 * frames and idle connections (issue 14). Each must answer or end every connection, keep answering a
 * probe within 200 ms, hold its resident memory under idle + 64 MiB and give it back afterwards.
 *
 * The frames come from a seeded generator (tests/helpers/ttrpc_fuzz_worker.ts): a failure names its
 * connection and the seed, and `BERTH_FUZZ_SEED=<seed>` replays the same bytes. CI runs one fixed seed,
 * so its verdict does not change from run to run; `BERTH_FUZZ_SEED=random` explores a new one.
 */

import { encodeFrame, HEADER_LENGTH, MessageType } from "../src/ttrpc/frame.ts";
import { type Target, underAttack, withEventsSocket, withShim } from "./helpers/ttrpc_attack.ts";
import type { FuzzJob, FuzzResult } from "./helpers/ttrpc_fuzz_worker.ts";

const SEED_TEXT = Deno.env.get("BERTH_FUZZ_SEED") ?? "140614";
const SEED = SEED_TEXT === "random" ? Date.now() % 1_000_000 : Number(SEED_TEXT);
const CONNECTIONS = 200;
/** Connections open at once: each may carry a 4 MiB frame, and the bound is on the server's memory. */
const CONCURRENCY = 8;
const IDLE_CONNECTIONS = 500;

/** CONNECTIONS fuzzed connections to the target, from a worker; throws the worker's first failure. */
async function fuzz(target: Target): Promise<void> {
  console.log(`  BERTH_FUZZ_SEED=${SEED}`);
  const worker = new Worker(new URL("./helpers/ttrpc_fuzz_worker.ts", import.meta.url), { type: "module" });
  try {
    const result = await new Promise<FuzzResult>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<FuzzResult>) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`The fuzz worker failed: ${e.message}`));
      };
      const { path, call, callCode, safeMethods } = target;
      const job: FuzzJob = {
        target: { path, call, callCode, safeMethods },
        seed: SEED,
        connections: CONNECTIONS,
        concurrency: CONCURRENCY,
      };
      worker.postMessage(job);
    });
    if ("error" in result) throw new Error(result.error);
  } finally {
    worker.terminate();
  }
}

/**
 * IDLE_CONNECTIONS connections held open at once: most send nothing, one in five sends part of a frame
 * header. The server must serve the probe meanwhile and free them all when they close.
 */
async function idle(target: Target): Promise<void> {
  const conns: Deno.Conn[] = [];
  await underAttack(target, async () => {
    try {
      for (let i = 0; i < IDLE_CONNECTIONS; i++) {
        const conn = await Deno.connect({ transport: "unix", path: target.path });
        conns.push(conn);
        if (i % 5 === 0) {
          const header = encodeFrame(2 * i + 1, MessageType.request, 0, new Uint8Array(100));
          await conn.write(header.subarray(0, 1 + i % (HEADER_LENGTH - 1)));
        }
      }
      // Held: the probe keeps running while they all sit there.
      await new Promise((r) => setTimeout(r, 3_000));
    } finally {
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
    }
  });
  await target.check();
}

Deno.test({
  name: "ttrpc fuzz: the daemon's events socket answers or ends 200 connections of malformed frames",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withEventsSocket(async (t) => {
      await underAttack(t, () => fuzz(t));
      await t.check();
    }),
});

Deno.test({
  name: "ttrpc fuzz: Berth's shim answers or ends 200 connections of malformed frames",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withShim(async (t) => {
      await underAttack(t, () => fuzz(t));
      await t.check();
    }),
});

Deno.test({
  name: "ttrpc: the daemon's events socket serves the probe beside 500 idle connections",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => withEventsSocket(idle),
});

Deno.test({
  name: "ttrpc: Berth's shim serves the probe beside 500 idle connections",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => withShim(idle),
});
