/**
 * Memory with running containers (issues 5 and 6): RSS and PSS of the daemon plus all its shims with
 * 1, 10, 50 (100 with --full) `sleep` containers, and the marginal PSS of one more container. Shims are
 * found by command line (see shims.ts); the containers' own processes are not counted.
 */

import { buildFixtureImages, pushFixtures } from "../tests/fixtures/images.ts";
import { startRegistry, type TestRegistry } from "../tests/helpers/registry.ts";
import { ctrArgv, inLanes, must } from "./exec.ts";
import { startReady } from "./ready.ts";
import type { FigureGroup, FigureSpec, SampleContext, SetupContext } from "./runner.ts";
import { daemonAndShimsMemory, marginal } from "./shims.ts";
import { NAMESPACE, type Target } from "./targets.ts";
import { sleep } from "./sleep.ts";

/** The figure specs for container counts: RSS and PSS at each count, marginal PSS at each count above 1. */
export function memoryFigures(counts: readonly number[]): FigureSpec[] {
  const out: FigureSpec[] = [];
  for (const n of counts) {
    out.push({
      id: `rss_${n}_mib`,
      label: `daemon + shims RSS, ${n} running container${n === 1 ? "" : "s"}`,
      unit: "MiB",
    });
    out.push({
      id: `pss_${n}_mib`,
      label: `daemon + shims PSS, ${n} running container${n === 1 ? "" : "s"}`,
      unit: "MiB",
    });
  }
  for (const n of counts.filter((n) => n > 1)) {
    out.push({ id: `marginal_pss_${n}_mib`, label: `marginal PSS per container, 1 → ${n}`, unit: "MiB" });
  }
  return out;
}

export function memoryGroup(options: { counts: readonly number[] }): FigureGroup {
  const counts = [...options.counts].sort((a, b) => a - b);
  if (counts[0] !== 1) {
    throw new Error("Memory group counts must start at 1: the marginal cost is taken from it");
  }
  let tmp: string | undefined;
  let registry: TestRegistry | undefined;
  let image = "";

  const setup = async (ctx: SetupContext) => {
    tmp = await Deno.makeTempDir({ prefix: "berth-bench-memory-" });
    registry = await startRegistry({ signal: ctx.signal });
    const set = await buildFixtureImages(`${tmp}/fixtures`);
    image = (await pushFixtures(registry, set, { names: ["single"], signal: ctx.signal })).single.reference;
  };

  const teardown = async () => {
    await registry?.stop();
    if (tmp) await Deno.remove(tmp, { recursive: true }).catch(() => {});
    registry = undefined;
    tmp = undefined;
  };

  const sample = async (target: Target, ctx: SampleContext): Promise<Record<string, number>> => {
    const { signal } = ctx;
    const settleMs = ctx.quick ? 500 : 1_500;
    const d = await startReady(target);
    const started: string[] = [];
    try {
      const ctr = (args: string[]) =>
        must(ctrArgv(d.socket, NAMESPACE, args), { signal, timeoutMs: 120_000 });
      await ctr(["images", "pull", "--plain-http", image]);
      const out: Record<string, number> = {};
      const pss: Record<number, number> = {};
      for (const n of counts) {
        const ids = Array.from({ length: n - started.length }, (_, i) => `m${started.length + i + 1}`);
        await inLanes(
          ids.map((id) => async () => {
            await ctr(["run", "-d", image, id, "/bin/sleep", "3600"]);
            started.push(id);
          }),
          4,
        );
        // Let start-up garbage settle, as a long-running host would see it.
        await sleep(settleMs, signal);
        const running = (await ctr(["tasks", "ls"])).stdout.split("\n").filter((l) => / RUNNING\b/.test(l));
        if (running.length !== n) {
          throw new Error(`Expected ${n} running tasks, the daemon lists ${running.length}`);
        }
        const m = await daemonAndShimsMemory(d.pid, d.socket);
        out[`rss_${n}_mib`] = m.rssKiB / 1024;
        out[`pss_${n}_mib`] = pss[n] = m.pssKiB / 1024;
        if (n > 1) out[`marginal_pss_${n}_mib`] = marginal(pss[1]!, pss[n]!, n);
      }
      return out;
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${target.id} daemon log ends:\n${await d.logTail(5)}`);
    } finally {
      // Tasks and containers go through the daemon; d.stop() then kills whatever is left (shims included).
      const ctrQuiet = (args: string[]) => must(ctrArgv(d.socket, NAMESPACE, args), { timeoutMs: 15_000 });
      for (let i = 0; i < started.length; i += 10) {
        const chunk = started.slice(i, i + 10);
        await ctrQuiet(["tasks", "rm", "-f", ...chunk]).catch(() => {});
        await ctrQuiet(["containers", "rm", ...chunk]).catch(() => {});
      }
      await d.stop();
    }
  };

  return {
    id: "memory",
    title: "Memory: daemon plus all shims with running containers",
    defaultRuns: { full: 2, quick: 1 },
    warmup: false,
    setup,
    teardown,
    sample,
    figures: memoryFigures(counts),
    notes: [
      `A fresh daemon pulls the busybox fixture, then starts \`ctr run -d IMG ID /bin/sleep 3600\` ` +
      `containers (4 at a time) up to ${counts.join(", ")} running containers.`,
      "After each step and a settle pause (1.5 s), RSS and PSS are summed from `/proc/<pid>/smaps_rollup` " +
      "over the daemon and every shim of its socket (found by command line: `containerd-shim-runc-v2 … " +
      "-address SOCK`, Berth's `… shim … -address SOCK`; containerd's shims are not the daemon's children). " +
      "The containers' own processes are not counted. containerd runs one shim per container; Berth one " +
      "per namespace.",
      "Marginal PSS per container: (PSS(n) − PSS(1)) / (n − 1).",
      "Clean-up: `ctr tasks rm -f` and `ctr containers rm` for every container, the daemon stopped, then " +
      "any shim of its socket killed by pid (Berth's idle shim lingers 10 s), the namespace's cgroups and " +
      "every mount under the daemon's temp dir removed.",
    ],
  };
}
