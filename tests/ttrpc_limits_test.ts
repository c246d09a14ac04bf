/**
 * Both ttrpc servers under a flood from a client that writes requests and never reads its replies
 * (issue 14 item 4): the daemon's `<address>.ttrpc` events socket and Berth's shim. Each must stop
 * reading from that client and cut it off, hold its resident memory under idle + 64 MiB, answer another
 * client within 200 ms meanwhile, and give the memory back once the attacker has gone.
 */

import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { Events, ForwardRequestSchema } from "../src/gen/services/ttrpc/events/v1/events_pb.ts";
import { StateRequestSchema, Task } from "../src/gen/runtime/task/v2/shim_pb.ts";
import { encodeFrame, MessageType } from "../src/ttrpc/frame.ts";
import { encodeRequest } from "../src/ttrpc/messages.ts";
import {
  Code,
  createTtrpcClient,
  NAMESPACE_METADATA_KEY,
  TtrpcClient,
  TtrpcError,
} from "../src/ttrpc/mod.ts";
import { startDaemon } from "./helpers/daemon.ts";
import { setup, teardown } from "./helpers/tasks.ts";

const MiB = 1 << 20;
const FLOOD_FRAMES = 300_000;
/** The attack ends here at the latest, cut off or not (before the fix it was never cut off). */
const ATTACK_MS = 20_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

function rss(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** `count` request frames for one method, on stream ids 1, 3, 5, … as a client must number them. */
function flood(service: string, method: string, payload: Uint8Array, ns: string): Uint8Array {
  const body = encodeRequest({
    service,
    method,
    payload,
    timeoutNano: 0n,
    metadata: { [NAMESPACE_METADATA_KEY]: [ns] },
  });
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

/**
 * Takes `pid`'s idle RSS, floods `path` while sampling RSS and timing `probe`, then checks the bounds:
 * RSS under idle + 64 MiB, the probe within 200 ms (p90; no call over 1 s), the attacker cut off, and
 * RSS back within 16 MiB of idle afterwards.
 */
async function attack(
  pid: number,
  path: string,
  bytes: Uint8Array,
  probe: () => Promise<void>,
): Promise<void> {
  for (let i = 0; i < 50; i++) await probe();
  await sleep(1000);
  let idle = 0;
  for (let i = 0; i < 5; i++) {
    idle = Math.max(idle, rss(pid));
    await sleep(100);
  }
  let stop = false;
  let peak = idle;
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
      await probe().catch(() => {});
      latencies.push(performance.now() - t0);
      await sleep(5);
    }
  })();
  let cut: boolean;
  try {
    cut = await neverReads(path, bytes);
  } finally {
    stop = true;
    await Promise.all([sampler, prober]);
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  const p90 = sorted[Math.floor(sorted.length * 0.9)]!;
  const worst = sorted[sorted.length - 1]!;
  console.log(
    `  RSS idle ${mib(idle)}, peak ${mib(peak)}; probe p90 ${p90.toFixed(1)} ms, worst ${
      worst.toFixed(1)
    } ms over ${latencies.length} calls; cut off: ${cut}`,
  );
  assert.ok(peak < idle + 64 * MiB, `RSS peaked at ${mib(peak)}, idle ${mib(idle)}`);
  assert.ok(cut, "the server cut off a client that read no reply");
  assert.ok(p90 < 200, `The probe took ${p90.toFixed(0)} ms (p90) during the attack`);
  assert.ok(worst < 1000, `The probe took ${worst.toFixed(0)} ms during the attack`);
  const deadline = Date.now() + 30_000;
  let now = rss(pid);
  while (now >= idle + 16 * MiB && Date.now() < deadline) {
    await sleep(100);
    now = rss(pid);
  }
  assert.ok(now < idle + 16 * MiB, `RSS stayed at ${mib(now)} after the attack, idle ${mib(idle)}`);
}

Deno.test({
  name: "ttrpc: the daemon's events socket cuts off a client that floods Forward and never reads",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using d = await startDaemon();
    const path = `${d.address}.ttrpc`;
    const client = await TtrpcClient.connect(path, { timeoutMs: 5_000 });
    try {
      const events = createTtrpcClient(Events, client);
      // An envelope without an event: answered at once with InvalidArgument, and nothing reaches the bus.
      const probe = async () => {
        const err = await events.forward({}).then(() => undefined, (e) => e);
        assert.ok(err instanceof TtrpcError && err.code === Code.invalidArgument, String(err));
      };
      const payload = toBinary(ForwardRequestSchema, create(ForwardRequestSchema, {}));
      await attack(d.process.pid, path, flood(Events.typeName, "Forward", payload, "default"), probe);
    } finally {
      client.close();
    }
    assert.doesNotMatch(d.logs(), /Uncaught|panicked/);
  },
});

Deno.test({
  name: "ttrpc: Berth's shim cuts off a client that floods Task.State and never reads",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup(undefined, "berth");
    try {
      const run = await env.ctr(["run", "-d", env.image, "f1", "sleep", "1000"]);
      assert.equal(run.code, 0, run.stderr);
      const bundle = `${env.daemon.state}/io.containerd.runtime.v2.task/${env.ns}/f1`;
      const path = (await Deno.readTextFile(`${bundle}/address`)).trim().replace(/^unix:\/\//, "");
      const client = await TtrpcClient.connect(path, {
        metadata: { [NAMESPACE_METADATA_KEY]: env.ns },
        timeoutMs: 5_000,
      });
      try {
        const task = createTtrpcClient(Task, client);
        const { shimPid } = await task.connect({ id: "f1" });
        const probe = async () => {
          assert.equal((await task.state({ id: "f1" })).id, "f1");
        };
        const payload = toBinary(StateRequestSchema, create(StateRequestSchema, { id: "f1" }));
        await attack(shimPid, path, flood(Task.typeName, "State", payload, env.ns), probe);
      } finally {
        client.close();
      }
    } finally {
      await teardown(env);
    }
  },
});
