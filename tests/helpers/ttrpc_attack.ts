/**
 * What the ttrpc attack tests share (issue 14): the two ttrpc servers Berth runs, each with a harmless
 * probe call, and `underAttack`, which holds one of them to the bounds while an attack runs.
 */

import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { Events, ForwardRequestSchema } from "../../src/gen/services/ttrpc/events/v1/events_pb.ts";
import { StateRequestSchema, Task } from "../../src/gen/runtime/task/v2/shim_pb.ts";
import { Status } from "../../src/gen/types/task/task_pb.ts";
import {
  Code,
  createTtrpcClient,
  type Metadata,
  NAMESPACE_METADATA_KEY,
  TtrpcClient,
  TtrpcError,
} from "../../src/ttrpc/mod.ts";
import { startDaemon } from "./daemon.ts";
import { setup, teardown } from "./tasks.ts";

export const MiB = 1 << 20;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

/**
 * Anonymous resident memory of a process (heap, buffers), in bytes. Not VmRSS: an idle daemon or shim
 * hands its executable's pages back (startup_pages.ts) and calls bring them back in, which no attack costs.
 */
export function rss(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/RssAnon:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** One of Berth's ttrpc servers, ready to be attacked. */
export interface Target {
  readonly pid: number;
  /** The unix socket it serves. */
  readonly path: string;
  /** A harmless call that must keep answering; throws if the answer is wrong. */
  readonly probe: () => Promise<void>;
  /** The probe as raw request parts, for attackers that write their own frames. */
  readonly call: {
    readonly service: string;
    readonly method: string;
    readonly payload: Uint8Array;
    readonly metadata: Metadata;
  };
  /** The status code the probe call gets. */
  readonly callCode: number;
  /** Read-only methods of the served service, safe to call with any payload. */
  readonly safeMethods: readonly string[];
  /** Throws unless the server is alive and still holds its state (the shim's task still runs). */
  readonly check: () => Promise<void>;
}

/** The daemon's `<address>.ttrpc` events socket. */
export async function withEventsSocket(fn: (t: Target) => Promise<void>): Promise<void> {
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
    await fn({
      pid: d.process.pid,
      path,
      probe,
      call: {
        service: Events.typeName,
        method: "Forward",
        payload: toBinary(ForwardRequestSchema, create(ForwardRequestSchema, {})),
        metadata: {},
      },
      callCode: Code.invalidArgument,
      safeMethods: ["Forward"],
      check: async () => {
        assert.ok(await Deno.stat(`/proc/${d.process.pid}`).then(() => true, () => false), "The daemon died");
        await probe();
      },
    });
  } finally {
    client.close();
  }
  assert.doesNotMatch(d.logs(), /Uncaught|panicked/);
}

/** Berth's shim, serving one running container `f1`. */
export async function withShim(fn: (t: Target) => Promise<void>): Promise<void> {
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
      await fn({
        pid: shimPid,
        path,
        probe,
        call: {
          service: Task.typeName,
          method: "State",
          payload: toBinary(StateRequestSchema, create(StateRequestSchema, { id: "f1" })),
          metadata: { [NAMESPACE_METADATA_KEY]: [env.ns] },
        },
        callCode: Code.ok,
        safeMethods: ["State", "Pids", "Stats", "Connect"],
        check: async () => {
          assert.ok(await Deno.stat(`/proc/${shimPid}`).then(() => true, () => false), "The shim died");
          assert.equal((await task.state({ id: "f1" })).status, Status.RUNNING);
        },
      });
    } finally {
      client.close();
    }
  } finally {
    await teardown(env);
  }
}

export interface AttackFigures {
  readonly idle: number;
  readonly peak: number;
  readonly p90: number;
  readonly worst: number;
  readonly calls: number;
}

/**
 * Takes `pid`'s idle RSS, runs `attack` while sampling RSS and timing `probe`, then checks the issue's
 * bounds: RSS under idle + 64 MiB, the probe within 200 ms (p90; no call over 1 s), and RSS back within
 * 16 MiB of idle once `attack` has returned (it must have closed its connections by then).
 */
export async function underAttack<T>(
  target: Pick<Target, "pid" | "probe">,
  attack: () => Promise<T>,
): Promise<{ result: T; figures: AttackFigures }> {
  const { pid, probe } = target;
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
  let result: T;
  try {
    result = await attack();
  } finally {
    stop = true;
    await Promise.all([sampler, prober]);
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  const figures: AttackFigures = {
    idle,
    peak,
    p90: sorted[Math.floor(sorted.length * 0.9)]!,
    worst: sorted[sorted.length - 1]!,
    calls: sorted.length,
  };
  console.log(
    `  RSS idle ${mib(idle)}, peak ${mib(peak)}; probe p90 ${figures.p90.toFixed(1)} ms, worst ${
      figures.worst.toFixed(1)
    } ms over ${figures.calls} calls`,
  );
  assert.ok(peak < idle + 64 * MiB, `RSS peaked at ${mib(peak)}, idle ${mib(idle)}`);
  assert.ok(figures.p90 < 200, `The probe took ${figures.p90.toFixed(0)} ms (p90) during the attack`);
  assert.ok(figures.worst < 1000, `The probe took ${figures.worst.toFixed(0)} ms during the attack`);
  const deadline = Date.now() + 30_000;
  let now = rss(pid);
  while (now >= idle + 16 * MiB && Date.now() < deadline) {
    await sleep(100);
    now = rss(pid);
  }
  assert.ok(now < idle + 16 * MiB, `RSS stayed at ${mib(now)} after the attack, idle ${mib(idle)}`);
  return { result, figures };
}
