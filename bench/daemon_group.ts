/**
 * Daemon figures (issue 2's "Measure"): start to first served call, idle memory, and the cost of
 * a Version call from a long-lived Deno client and from ctr (a Go process per call).
 */

import { listPlugins, versionLatencies } from "./grpc_client.ts";
import { treeMemory } from "./procfs.ts";
import { ctrVersion, readyByCtr, readyByGrpc } from "./ready.ts";
import type { FigureGroup, SampleContext } from "./runner.ts";
import { quantile } from "./stats.ts";
import type { Target } from "./targets.ts";
import { sleep } from "./sleep.ts";

const READY_TIMEOUT_MS = 30_000;

async function sample(target: Target, ctx: SampleContext): Promise<Record<string, number>> {
  const settleMs = ctx.quick ? 500 : 1_500;
  const calls = ctx.quick ? 200 : 500;
  const ctrCalls = ctx.quick ? 5 : 10;
  const servedSettleMs = ctx.quick ? 1_000 : 5_000;

  // Two starts: one polled by each client, so neither poller disturbs the other's figure.
  const first = await target.start();
  let startCtr: number;
  try {
    startCtr = await readyByCtr(first, { timeoutMs: READY_TIMEOUT_MS });
  } finally {
    await first.stop();
  }

  let daemon = await target.start();
  try {
    const startGrpc = await readyByGrpc(daemon, { timeoutMs: READY_TIMEOUT_MS });
    // Berth answers Version while its other plugins start; this is when every one has.
    await listPlugins(daemon.socket, { timeoutMs: READY_TIMEOUT_MS });
    const startFull = performance.now() - daemon.spawnedAt;
    // Idle means after start-up work has settled (lazy plugin init, GC after boot), before any load.
    await sleep(settleMs, ctx.signal);
    const idle = await treeMemory(daemon.pid);

    const lat = await versionLatencies(daemon.socket, { calls, warmup: 20, signal: ctx.signal });

    const ctrTimes: number[] = [];
    for (let i = 0; i < ctrCalls; i++) {
      ctx.signal.throwIfAborted();
      const r = await ctrVersion(daemon.socket);
      if (!r.ok) {
        const tail = await daemon.logTail(5);
        throw new Error(`ctr version against ${target.id} failed: ${r.stderr}; daemon log ends:\n${tail}`);
      }
      ctrTimes.push(r.ms);
    }
    // Idle again after serving: what the calls brought back in (code, heap) and kept. A process that
    // hands pages back once idle must show it here too, not only before its first calls.
    await sleep(servedSettleMs, ctx.signal);
    const served = await treeMemory(daemon.pid);

    // A reboot's start: the same root and state again, with what the first start made in them.
    daemon = await daemon.restart();
    const restartGrpc = await readyByGrpc(daemon, { timeoutMs: READY_TIMEOUT_MS });

    return {
      start_grpc_ms: startGrpc,
      start_ctr_ms: startCtr,
      start_full_ms: startFull,
      restart_grpc_ms: restartGrpc,
      idle_rss_mib: idle.rssKiB / 1024,
      idle_pss_mib: idle.pssKiB / 1024,
      served_pss_mib: served.pssKiB / 1024,
      version_p50_ms: quantile(lat, 0.5),
      version_p99_ms: quantile(lat, 0.99),
      ctr_version_ms: quantile(ctrTimes, 0.5),
    };
  } finally {
    await daemon.stop();
  }
}

export const daemonGroup: FigureGroup = {
  id: "daemon",
  title: "Daemon: start, idle memory, Version calls",
  figures: [
    { id: "start_grpc_ms", label: "start → first Version (Deno gRPC client)", unit: "ms" },
    { id: "start_ctr_ms", label: "start → first `ctr version` success", unit: "ms" },
    { id: "start_full_ms", label: "start → every plugin started (first Plugins answer)", unit: "ms" },
    { id: "restart_grpc_ms", label: "restart on its root → first Version (Deno gRPC client)", unit: "ms" },
    { id: "idle_rss_mib", label: "idle RSS (process tree)", unit: "MiB" },
    { id: "idle_pss_mib", label: "idle PSS (process tree)", unit: "MiB" },
    { id: "served_pss_mib", label: "idle PSS after the calls below, settled 5 s", unit: "MiB" },
    { id: "version_p50_ms", label: "Version latency p50 (Deno client, one connection)", unit: "ms" },
    { id: "version_p99_ms", label: "Version latency p99 (Deno client, one connection)", unit: "ms" },
    { id: "ctr_version_ms", label: "`ctr version` end to end (median per run)", unit: "ms" },
  ],
  sample,
};
