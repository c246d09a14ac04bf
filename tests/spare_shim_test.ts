/**
 * The spare shim (src/core/runtime/spare_shim.ts): started once an image arrives in a namespace that has
 * no shim, adopted by that namespace's first container, retired when unused, and never outliving the
 * daemon that started it.
 */
import assert from "node:assert/strict";
import { removeNamespaceCgroups, runCtr, setup, teardown } from "./helpers/tasks.ts";
import { listeningUnixSockets, shimsOf } from "./helpers/procs.ts";

/** The nice values of every thread of `pid` (field 19 of /proc/PID/task/TID/stat). */
function niceOf(pid: number): number[] {
  return [...Deno.readDirSync(`/proc/${pid}/task`)].map((t) => {
    const stat = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/stat`);
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
  });
}

async function until(what: string, test: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!test()) {
    if (Date.now() > end) throw new Error(`Timed out after ${ms} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Kills whatever shim of `address` a test's daemon left behind. */
function killShims(address: string): void {
  for (const pid of shimsOf(address).keys()) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
}

function spares(address: string): number[] {
  return [...shimsOf(address)].filter(([, argv]) => argv.includes("-spare")).map(([pid]) => pid);
}

const SPARE_CONFIG = '[plugins."io.containerd.runtime.v2.task"]\n  spare_shim_idle_ms = 3000\n';

Deno.test({
  name: "A pull starts a spare shim that the namespace's first container adopts; unused, it is retired",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup(undefined, "berth", {}, { extraConfig: SPARE_CONFIG });
    const address = env.daemon.address;
    try {
      // The pull into a namespace without a shim started its shim ahead, from a spare.
      await until("a spare shim runs", () => spares(address).length === 1);
      const [spare] = spares(address);
      // It serves the namespace before its first container asks (loaded at nice 19, then at 0: how long
      // it stays at 19 depends on the machine, so only the end state is checked).
      await until(
        "it listens",
        () => listeningUnixSockets(spare!).some((p) => p.startsWith("/run/berth/s/")),
      );

      const run = await env.ctr(["run", "-d", env.image, "c1", "/bin/sleep", "60"]);
      assert.equal(run.code, 0, run.stderr);
      // The task's shim is the spare: no other shim was started.
      assert.deepEqual([...shimsOf(address).keys()], [spare]);
      // Adopted, it and the container run at the normal priority.
      assert.deepEqual([...new Set(niceOf(spare!))], [0]);
      const ls = await env.ctr(["tasks", "ls"]);
      const pid = Number(ls.stdout.split("\n").find((l) => l.startsWith("c1"))?.split(/\s+/)[1]);
      assert.ok(pid > 0, ls.stdout);
      assert.deepEqual([...new Set(niceOf(pid))], [0]);
      const exec = await env.ctr(["tasks", "exec", "--exec-id", "e1", "c1", "/bin/echo", "adopted"]);
      assert.equal(exec.stdout.trim(), "adopted", exec.stderr);

      // Another namespace's image starts another spare; unused, it goes after spare_shim_idle_ms.
      const pull = await runCtr(address, `${env.ns}x`, ["images", "pull", "--plain-http", env.image], 60_000);
      assert.equal(pull.code, 0, pull.stderr);
      await until("a second spare runs", () => spares(address).length === 2);
      await until("the unused spare is retired", () => spares(address).length === 1, 9_000);
      assert.deepEqual(spares(address), [spare], "the adopted shim must stay");

      // A namespace whose shim serves already needs no spare.
      const img = await env.ctr(["images", "tag", "--force", env.image, `${env.image}-again`]);
      assert.equal(img.code, 0, img.stderr);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual([...shimsOf(address).keys()], [spare]);
    } finally {
      await teardown(env);
    }
  },
});

Deno.test({
  name: "A spare shim exits with the daemon that started it, also when the daemon is killed",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup(undefined, "berth", {}, { extraConfig: SPARE_CONFIG.replace("3000", "60000") });
    const address = env.daemon.address;
    try {
      await until("a spare shim runs", () => spares(address).length === 1);
      await env.daemon.stop("SIGKILL");
      await until("the spare exits", () => spares(address).length === 0);
    } finally {
      await teardown(env).catch(() => {});
      killShims(address);
    }
  },
});

Deno.test({
  name: "A namespace's shim started ahead listens before any container, and stops with the daemon",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup(undefined, "berth", {}, { extraConfig: SPARE_CONFIG.replace("3000", "60000") });
    const address = env.daemon.address;
    try {
      await until("a spare shim runs", () => spares(address).length === 1);
      const [shim] = spares(address);
      // It listens on a group socket before any container asks for it.
      await until("it listens", () => listeningUnixSockets(shim!).some((p) => p.startsWith("/run/berth/s/")));
      // Still without a container, it lingers as an idle shim does; a daemon that stops takes it along.
      await env.daemon.stop();
      await until("the shim exits", () => shimsOf(address).size === 0);
    } finally {
      // No container was made; teardown's ctr calls would wait for the stopped daemon's socket.
      await env.daemon.stop();
      killShims(address);
      await Deno.remove(env.daemon.dir, { recursive: true }).catch(() => {});
      await env.registry.stop();
      await removeNamespaceCgroups(env.ns);
    }
  },
});

Deno.test({
  name: "spare_shim_idle_ms = 0 starts no spare shim",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup(undefined, "berth", {}, { extraConfig: SPARE_CONFIG.replace("3000", "0") });
    try {
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(spares(env.daemon.address), []);
      const run = await env.ctr(["run", "--rm", env.image, "c1", "/bin/echo", "fresh"]);
      assert.equal(run.stdout.trim(), "fresh", run.stderr);
    } finally {
      await teardown(env);
    }
  },
});

Deno.test({
  name: "Containers created at once in a namespace without a shim share one: the adopted spare",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup(undefined, "berth", {}, { extraConfig: SPARE_CONFIG });
    const address = env.daemon.address;
    const ids = ["p1", "p2", "p3", "p4"];
    try {
      await until("a spare shim runs", () => spares(address).length === 1);
      // CRI pods started in parallel do this: each Create finds no shim for the group at first.
      const runs = await Promise.all(
        ids.map((id) => env.ctr(["run", "-d", env.image, id, "/bin/sleep", "60"])),
      );
      for (const r of runs) assert.equal(r.code, 0, r.stderr);
      assert.equal(shimsOf(address).size, 1, `one shim expected: ${[...shimsOf(address).keys()]}`);
      const ls = await env.ctr(["tasks", "ls", "-q"]);
      assert.deepEqual(ls.stdout.trim().split("\n").sort(), ids);
    } finally {
      await teardown(env);
    }
  },
});
