/**
 * Issue 14 item 12's acceptance, repeatable: does the daemon's memory creep under load? A fresh daemon
 * from the bundle imports the busybox image (scripts/busybox_image.ts), then serves rounds of
 * `ctr run -d IMG ID sleep 60`, `ctr tasks exec`, `ctr tasks kill -s 9`, a wait for the exit,
 * `ctr tasks rm` and `ctr containers rm` (Debian's ctr, 4 containers at a time). After each round and a
 * settle pause it prints the daemon's VmRSS, Pss, its [heap] mapping (glibc's main arena: resident / size),
 * its other anonymous mappings, open fds and threads.
 *
 *   deno run -A bench/memory_creep.ts [--rounds 4] [--containers 60] [--runs 1] [--settle-ms 3000]
 *
 * Exits 1 when, in any run, the daemon's RSS after the last round is more than 5 % above round 1's.
 * A test cannot hold this bound in its time budget: with 10-15 containers a round the arena already
 * reaches its high-water mark in round 1, so rounds compare equal with or without the leak.
 */

import { ensureBundle } from "./bundle.ts";
import { ctrArgv, inLanes, must } from "./exec.ts";
import { type Mapping, parseSmaps, parseSmapsRollup } from "./procfs.ts";
import { readyByCtr } from "./ready.ts";
import { sleep } from "./sleep.ts";
import { berthTarget, type Daemon, NAMESPACE, stopAll } from "./targets.ts";

const LIMIT = 0.05;
const LANES = 4;
const IMAGE = "docker.io/library/busybox:latest";
const ROOT = new URL("..", import.meta.url).pathname;

interface Options {
  rounds: number;
  containers: number;
  runs: number;
  settleMs: number;
}

function parseArgs(args: readonly string[]): Options {
  const out: Options = { rounds: 4, containers: 60, runs: 1, settleMs: 3_000 };
  const keys: Record<string, keyof Options> = {
    "--rounds": "rounds",
    "--containers": "containers",
    "--runs": "runs",
    "--settle-ms": "settleMs",
  };
  for (let i = 0; i < args.length; i += 2) {
    const key = keys[args[i]!];
    const value = Number(args[i + 1]);
    if (!key || !Number.isInteger(value) || value < 1) {
      throw new Error(`Cannot read argument ${args[i]} ${args[i + 1] ?? ""}: expected ${Object.keys(keys)}`);
    }
    out[key] = value;
  }
  if (out.rounds < 2) throw new Error("Cannot compare rounds: --rounds must be at least 2");
  return out;
}

interface RoundFigures {
  rssMiB: number;
  pssMiB: number;
  heapRssMiB: number;
  heapSizeMiB: number;
  anonRssMiB: number;
  fds: number;
  threads: number;
}

async function figures(pid: number): Promise<RoundFigures> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN);
  const rollup = parseSmapsRollup(await Deno.readTextFile(`/proc/${pid}/smaps_rollup`));
  const maps = parseSmaps(await Deno.readTextFile(`/proc/${pid}/smaps`));
  const sum = (ms: Mapping[], key: "rssKiB" | "sizeKiB") => ms.reduce((n, m) => n + m[key], 0) / 1024;
  const heap = maps.filter((m) => m.name === "[heap]");
  return {
    rssMiB: field("VmRSS") / 1024,
    pssMiB: rollup.pssKiB / 1024,
    heapRssMiB: sum(heap, "rssKiB"),
    heapSizeMiB: sum(heap, "sizeKiB"),
    anonRssMiB: sum(maps.filter((m) => m.name === ""), "rssKiB"),
    fds: (await Array.fromAsync(Deno.readDir(`/proc/${pid}/fd`))).length,
    threads: field("Threads"),
  };
}

function line(label: string, f: RoundFigures): string {
  const mib = (n: number) => n.toFixed(1);
  return `${label.padEnd(22)} RSS ${mib(f.rssMiB)} MiB  PSS ${mib(f.pssMiB)} MiB  ` +
    `[heap] ${mib(f.heapRssMiB)}/${mib(f.heapSizeMiB)} MiB  anon ${mib(f.anonRssMiB)} MiB  ` +
    `fds ${f.fds}  threads ${f.threads}`;
}

/** One container's life, as the issue ran it. */
async function cycle(d: Daemon, id: string): Promise<void> {
  const ctr = (args: string[]) => must(ctrArgv(d.socket, NAMESPACE, args), { timeoutMs: 60_000 });
  await ctr(["run", "-d", IMAGE, id, "sleep", "60"]);
  await ctr(["tasks", "exec", "--exec-id", "e", id, "true"]);
  await ctr(["tasks", "kill", "-s", "9", id]);
  for (let i = 0; i < 200; i++) {
    const ls = await ctr(["tasks", "ls"]);
    const row = ls.stdout.split("\n").find((l) => l.startsWith(`${id} `));
    if (!row || !/\bRUNNING\b/.test(row)) break;
    await sleep(50);
  }
  await ctr(["tasks", "rm", id]);
  await ctr(["containers", "rm", id]);
}

/** One fresh daemon through every round; returns RSS growth from round 1 to the last, as a fraction. */
async function run(main: string, imageTar: string, options: Options): Promise<number> {
  const target = berthTarget({ main });
  const d = await target.start();
  try {
    await readyByCtr(d, { timeoutMs: 30_000 });
    await must(ctrArgv(d.socket, NAMESPACE, ["images", "import", imageTar]), { timeoutMs: 60_000 });
    await sleep(options.settleMs);
    console.log(line("imported", await figures(d.pid)));
    const rounds: RoundFigures[] = [];
    for (let r = 1; r <= options.rounds; r++) {
      const t0 = performance.now();
      const ids = Array.from({ length: options.containers }, (_, i) => `creep-${r}-${i}`);
      await inLanes(ids.map((id) => () => cycle(d, id)), LANES);
      const seconds = (performance.now() - t0) / 1000;
      await sleep(options.settleMs);
      const f = await figures(d.pid);
      rounds.push(f);
      console.log(line(`round ${r} (${seconds.toFixed(0)} s)`, f));
    }
    const growth = rounds.at(-1)!.rssMiB / rounds[0]!.rssMiB - 1;
    console.log(
      `round ${options.rounds} against round 1: ${growth >= 0 ? "+" : ""}${
        (growth * 100).toFixed(1)
      } % RSS ` +
        `(limit +${LIMIT * 100} %)`,
    );
    return growth;
  } catch (err) {
    throw new Error(`${(err as Error).message}\ndaemon log ends:\n${await d.logTail(10)}`);
  } finally {
    await d.stop();
    await target.dispose();
  }
}

if (import.meta.main) {
  const options = parseArgs(Deno.args);
  const tmp = await Deno.makeTempDir({ prefix: "berth-memory-creep-" });
  const interrupted = async () => {
    await stopAll();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  Deno.addSignalListener("SIGTERM", interrupted);
  let worst = -Infinity;
  try {
    const main = await ensureBundle((l) => console.error(l));
    const imageTar = `${tmp}/busybox.tar`;
    await must([Deno.execPath(), "run", "-A", `${ROOT}scripts/busybox_image.ts`, imageTar, IMAGE]);
    for (let i = 1; i <= options.runs; i++) {
      console.log(`run ${i}: ${options.rounds} rounds of ${options.containers} containers`);
      worst = Math.max(worst, await run(main, imageTar, options));
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    Deno.removeSignalListener("SIGINT", interrupted);
    Deno.removeSignalListener("SIGTERM", interrupted);
  }
  if (worst > LIMIT) {
    console.error(`Daemon memory creeps: RSS grew ${(worst * 100).toFixed(1)} % from round 1`);
    Deno.exit(1);
  }
}
