/**
 * The daemon's memory under repeated load (issue 14 item 12): rounds of `ctr run -d` + exec + kill + rm
 * must not leave anything behind per container. Measured on the V8 heap after the full collection a heap
 * snapshot makes, and by counting the snapshot's Promise objects: the daemon's ttrpc events server kept
 * one settled Promise per shim connection for ever (one per container here).
 */
import assert from "node:assert/strict";
import { setup, teardown } from "./helpers/tasks.ts";

const ROUNDS = 4;
const PER_ROUND = 10;

async function getJson(socket: string, path: string): Promise<Record<string, unknown>> {
  const out = await new Deno.Command("curl", {
    args: ["-s", "--max-time", "30", "--unix-socket", socket, `http://berth${path}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

interface HeapFigures {
  heapUsed: number;
  promises: number;
}

/** Collects garbage (by writing a heap snapshot), then reads the heap's size and its Promise count. */
async function heapFigures(socket: string): Promise<HeapFigures> {
  const { path } = await getJson(socket, "/debug/heap") as { path: string };
  const snapshot = JSON.parse(await Deno.readTextFile(path)) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  await Deno.remove(path);
  const fields = snapshot.snapshot.meta.node_fields;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const objectType = snapshot.snapshot.meta.node_types[0].indexOf("object");
  let promises = 0;
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    if (
      snapshot.nodes[i + typeAt] === objectType && snapshot.strings[snapshot.nodes[i + nameAt]!] === "Promise"
    ) {
      promises++;
    }
  }
  const vars = await getJson(socket, "/debug/vars") as { memory: Deno.MemoryUsage };
  return { heapUsed: vars.memory.heapUsed, promises };
}

/**
 * The least of a few samples a quarter second apart: a Promise kept per container stays in every one,
 * while calls still in flight when a round ends (a shim's last events, a connection closing) are gone
 * from a later one. On a loaded machine one sample counted 6 such Promises more than the next.
 */
async function settledHeapFigures(socket: string, samples = 3): Promise<HeapFigures> {
  let least: HeapFigures | undefined;
  for (let i = 0; i < samples; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 250));
    const f = await heapFigures(socket);
    least = {
      heapUsed: Math.min(least?.heapUsed ?? Infinity, f.heapUsed),
      promises: Math.min(least?.promises ?? Infinity, f.promises),
    };
  }
  return least!;
}

Deno.test({
  name: "Four rounds of run + exec + kill + rm leave the daemon's heap where the first round left it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "berth-memory-" });
    const socket = `${dir}/debug.sock`;
    const env = await setup(undefined, "berth", {}, { extraConfig: `[debug]\n  address = "${socket}"\n` });
    try {
      const after: HeapFigures[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        for (let i = 0; i < PER_ROUND; i++) {
          const id = `m${round}x${i}`;
          const run = await env.ctr(["run", "-d", env.image, id, "/bin/sleep", "600"], { timeoutMs: 15_000 });
          assert.equal(run.code, 0, `${id}: ${run.stderr}`);
          const exec = await env.ctr(["task", "exec", "--exec-id", `e${i}`, id, "true"]);
          assert.equal(exec.code, 0, `${id} exec: ${exec.stderr}`);
          await env.ctr(["task", "kill", "-s", "SIGKILL", id]);
          const rm = await env.ctr(["task", "rm", "-f", id]);
          assert.equal(rm.code, 0, `${id} task rm: ${rm.stderr}`);
          const crm = await env.ctr(["c", "rm", id]);
          assert.equal(crm.code, 0, `${id} c rm: ${crm.stderr}`);
        }
        after.push(await settledHeapFigures(socket));
      }
      const first = after[0]!;
      const last = after.at(-1)!;
      const figures = after.map((f) => `${(f.heapUsed / 2 ** 20).toFixed(2)} MiB/${f.promises} promises`)
        .join(" → ");
      // Nothing kept per container: before the fix, one Promise per container (+30 here).
      assert.ok(last.promises - first.promises < PER_ROUND, `Promises grow per container: ${figures}`);
      // V8 still compiles hot code in later rounds (~100 KiB); data kept per container would add more.
      assert.ok(last.heapUsed - first.heapUsed < 1 * 2 ** 20, `heap grows: ${figures}`);
    } finally {
      await teardown(env);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
