/**
 * Container figures (issue 5's "Measure"): `ctr run --rm IMG id /bin/true` end to end, the first run on
 * a fresh daemon (cold: Berth starts its namespace's shim) and the following ones (warm: Berth's shim is
 * still lingering from the run before), `ctr run -d`, 20 back-to-back runs and 4 parallel lanes; and the
 * floor, `runc run` of the same rootfs with no daemon at all.
 */

import { buildFixtureImages, pushFixtures } from "../tests/fixtures/images.ts";
import { startRegistry, type TestRegistry } from "../tests/helpers/registry.ts";
import { ctrArgv, inLanes, must, type Timed } from "./exec.ts";
import { startReady } from "./ready.ts";
import type { FigureGroup, SampleContext, SetupContext } from "./runner.ts";
import { median } from "./stats.ts";
import { NAMESPACE, removeCgroups, type Target } from "./targets.ts";

/** Runs per second from a count and the wall time they took. */
export function perSecond(count: number, ms: number): number {
  if (!(ms > 0)) throw new RangeError(`Cannot take a rate over ${ms} ms`);
  return count / (ms / 1000);
}

/** The OCI spec `runc spec` wrote, made to run /bin/true without a terminal in a cgroup we can clean up. */
export function floorSpec(spec: Record<string, unknown>, cgroupsPath: string): Record<string, unknown> {
  const process = { ...(spec.process as Record<string, unknown>), args: ["/bin/true"], terminal: false };
  const linux = { ...(spec.linux as Record<string, unknown>), cgroupsPath };
  return { ...spec, process, root: { path: "rootfs", readonly: true }, linux };
}

export function runGroup(): FigureGroup {
  let tmp: string | undefined;
  let registry: TestRegistry | undefined;
  let image = "";
  let bundle = "";
  let seq = 0;

  const setup = async (ctx: SetupContext) => {
    tmp = await Deno.makeTempDir({ prefix: "berth-bench-run-" });
    registry = await startRegistry({ signal: ctx.signal });
    const set = await buildFixtureImages(`${tmp}/fixtures`);
    const pushed = await pushFixtures(registry, set, { names: ["single"], signal: ctx.signal });
    image = pushed.single.reference;
    // The floor's rootfs is the same layer the daemons unpack.
    bundle = `${tmp}/bundle`;
    await Deno.mkdir(`${bundle}/rootfs`, { recursive: true });
    const layer = pushed.single.manifests[0]!.layers[0]!.digest.replace(/^sha256:/, "");
    await must(["tar", "-xzf", `${set.dir}/blobs/sha256/${layer}`, "-C", `${bundle}/rootfs`]);
    await must(["runc", "spec", "--bundle", bundle]);
    const spec = JSON.parse(await Deno.readTextFile(`${bundle}/config.json`));
    await Deno.writeTextFile(
      `${bundle}/config.json`,
      JSON.stringify(floorSpec(spec, `/${NAMESPACE}/runc-floor`), null, 2),
    );
  };

  const teardown = async () => {
    // The floor's runc leaves the namespace's parent cgroup behind after the last daemon stopped.
    await removeCgroups(NAMESPACE).catch(() => {});
    await registry?.stop();
    if (tmp) await Deno.remove(tmp, { recursive: true }).catch(() => {});
    registry = undefined;
    tmp = undefined;
  };

  const sample = async (target: Target, ctx: SampleContext): Promise<Record<string, number>> => {
    const { signal } = ctx;
    const warmRuns = ctx.quick ? 3 : 5;
    const detachRuns = ctx.quick ? 2 : 3;
    const burst = ctx.quick ? 8 : 20;
    const out: Record<string, number> = {};
    // Three daemons, so each figure starts from the same state (the rates do not inherit the
    // latency runs' lingering shim or heap).
    await onFresh(target, signal, async (ctr, cli, socket) => {
      const runRm = async () => (await ctr(["run", "--rm", image, id("r"), "/bin/true"])).ms;
      out.run_cold_ms = await runRm();
      const warm: number[] = [];
      for (let i = 0; i < warmRuns; i++) warm.push(await runRm());
      out.run_rm_ms = median(warm);
      if (cli === undefined) {
        out.run_rm_native_ms = out.run_rm_ms;
      } else {
        const native: number[] = [];
        for (let i = 0; i < warmRuns; i++) {
          const r = await must(
            [...cli, "-a", socket, "-n", NAMESPACE, "ctr", "run", "--rm", image, id("b"), "/bin/true"],
            { signal, timeoutMs: 60_000 },
          );
          native.push(r.ms);
        }
        out.run_rm_native_ms = median(native);
      }
      const detached: number[] = [];
      for (let i = 0; i < detachRuns; i++) {
        const c = id("d");
        detached.push((await ctr(["run", "-d", image, c, "/bin/sleep", "60"])).ms);
        await ctr(["tasks", "rm", "-f", c]);
        await ctr(["containers", "rm", c]);
      }
      out.run_d_ms = median(detached);
    });
    await onFresh(target, signal, async (ctr) => {
      const runRm = async () => (await ctr(["run", "--rm", image, id("r"), "/bin/true"])).ms;
      await runRm(); // the shim's start is the cold figure's, not the rate's
      const t0 = performance.now();
      for (let i = 0; i < burst; i++) await runRm();
      out.seq_runs_per_s = perSecond(burst, performance.now() - t0);
    });
    await onFresh(target, signal, async (ctr) => {
      const runRm = async () => (await ctr(["run", "--rm", image, id("r"), "/bin/true"])).ms;
      await runRm();
      const t0 = performance.now();
      await inLanes(Array.from({ length: burst }, () => runRm), 4);
      out.par_runs_per_s = perSecond(burst, performance.now() - t0);
    });
    return out;
  };

  const id = (p: string) => `${p}${++seq}`;

  /** A fresh daemon with the image pulled (not timed); stopped, with all it started, afterwards. */
  async function onFresh(
    target: Target,
    signal: AbortSignal,
    fn: (ctr: (args: string[]) => Promise<Timed>, cli: string[] | undefined, socket: string) => Promise<void>,
  ): Promise<void> {
    const d = await startReady(target);
    try {
      const ctr = (args: string[]) => must(ctrArgv(d.socket, NAMESPACE, args), { signal, timeoutMs: 60_000 });
      await ctr(["images", "pull", "--plain-http", image]);
      await fn(ctr, await target.cli(), d.socket);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${target.id} daemon log ends:\n${await d.logTail(5)}`);
    } finally {
      await d.stop();
    }
  }

  const reference = async (ctx: SampleContext): Promise<Record<string, number>> => {
    const runs = ctx.quick ? 3 : 5;
    const burst = ctx.quick ? 8 : 20;
    const state = `${tmp}/runc-state`;
    const runc = async () =>
      (await must(["runc", "--root", state, "run", "--bundle", bundle, `floor${++seq}`], {
        signal: ctx.signal,
      })).ms;
    const single: number[] = [];
    for (let i = 0; i < runs; i++) single.push(await runc());
    const t0 = performance.now();
    for (let i = 0; i < burst; i++) await runc();
    return { runc_run_ms: median(single), runc_seq_runs_per_s: perSecond(burst, performance.now() - t0) };
  };

  return {
    id: "run",
    title: "Containers: run /bin/true end to end",
    defaultRuns: { full: 3, quick: 1 },
    warmup: false,
    setup,
    teardown,
    sample,
    reference,
    figures: [
      { id: "run_cold_ms", label: "`ctr run --rm … /bin/true`, first on a fresh daemon (cold)", unit: "ms" },
      { id: "run_rm_ms", label: "`ctr run --rm … /bin/true`, warm (median of 5)", unit: "ms" },
      { id: "run_rm_native_ms", label: "own CLI `run --rm` warm (berth: `berth run --rm`)", unit: "ms" },
      { id: "run_d_ms", label: "`ctr run -d … /bin/sleep 60` (median of 3)", unit: "ms" },
      {
        id: "seq_runs_per_s",
        label: "20 back-to-back `ctr run --rm`, runs/s (higher is better)",
        unit: "runs/s",
      },
      {
        id: "par_runs_per_s",
        label: "20 runs in 4 parallel lanes, runs/s (higher is better)",
        unit: "runs/s",
      },
    ],
    references: [
      {
        id: "runc_run_ms",
        label: "floor: `runc run` of the same rootfs, no daemon (median of 5)",
        unit: "ms",
      },
      { id: "runc_seq_runs_per_s", label: "floor: 20 back-to-back `runc run`, runs/s", unit: "runs/s" },
    ],
    notes: [
      "Each run uses three fresh daemons (latencies; the back-to-back rate; the parallel rate), so every " +
      "figure starts from the same state. Each " +
      "pulls the 1-layer busybox fixture from a local registry (not timed), " +
      "then times whole `ctr -a SOCK -n NS run --rm IMG ID /bin/true` processes (stdio through ctr's FIFOs, " +
      "snapshot prepare, container and task create/start/wait/delete). The first run is the cold figure: " +
      "on Berth it includes starting the namespace's shim. Later runs are warm: Berth's shim lingers " +
      "(BERTH_SHIM_IDLE_MS, 10 s) between runs, while containerd starts one shim per container every time.",
      "`berth run --rm` runs Berth's own CLI from dist/bundle/main.js (deno start-up and module load included); on " +
      "containerd that row repeats the ctr figure.",
      "`run -d`: wall time of `ctr run -d … /bin/sleep 60` (returns once the task started); each container " +
      "is then removed with `ctr tasks rm -f` and `ctr containers rm` (not timed).",
      "Rates: after one unmeasured run (the shim's start), 20 (8 with --quick) `ctr run --rm` one after " +
      "the other, or the same count spread over 4 concurrent lanes; runs divided by wall time.",
      "Floor: the busybox layer untarred into a bundle with `runc spec` (args /bin/true, no terminal, " +
      "read-only root), run with `runc --root TMP run --bundle DIR ID` and no daemon, shim or image store.",
    ],
  };
}
