/**
 * The restart monitor (io.containerd.internal.v1.restart) with the real daemon, real runc and Debian's
 * `ctr`: containers labelled `containerd.io/restart.status=running` come back after their task is
 * killed, as their policy says, and after the daemon itself was killed.
 */
import assert from "node:assert/strict";
import { startDaemon } from "./helpers/daemon.ts";
import {
  daemonFor,
  type Env,
  hasShim,
  leftovers,
  runCtr,
  setup,
  shimConfig,
  type ShimKind,
  teardown,
} from "./helpers/tasks.ts";

const status = "containerd.io/restart.status";
const policy = "containerd.io/restart.policy";
const count = "containerd.io/restart.count";
const stoppedByHand = "containerd.io/restart.explicitly-stopped";

/** The task's pid and status from `ctr task ls`, or undefined when it has none. */
async function taskOf(env: Env, id: string): Promise<{ pid: number; status: string } | undefined> {
  const out = (await env.ctr(["task", "ls"])).stdout;
  const m = new RegExp(`^${id}\\s+(\\d+)\\s+(\\S+)$`, "m").exec(out);
  return m ? { pid: Number(m[1]), status: m[2]! } : undefined;
}

async function labelsOf(env: Env, id: string): Promise<Record<string, string>> {
  const info = await env.ctr(["c", "info", id]);
  assert.equal(info.code, 0, info.stderr);
  return (JSON.parse(info.stdout) as { Labels?: Record<string, string> }).Labels ?? {};
}

/** Polls until `check` gives a value, or fails after `timeoutMs`. */
async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < end) {
    last = await check();
    if (last !== undefined) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** True once the process is gone (a zombie still has its /proc/<pid>/stat, in state Z). */
async function processGone(pid: number): Promise<true | undefined> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
  return stat === "" || / Z /.test(stat) ? true : undefined;
}

async function runLabelled(
  env: Env,
  id: string,
  labels: Record<string, string>,
  cmd: string[],
  extra: string[] = [],
) {
  const args = ["run", "-d", ...extra];
  for (const [k, v] of Object.entries(labels)) args.push("--label", `${k}=${v}`);
  const run = await env.ctr([...args, env.image, id, ...cmd]);
  assert.equal(run.code, 0, run.stderr);
}

/** The monitor must not bring anything back while the test tears down: the labels go first. */
async function stopMonitoring(env: Env): Promise<void> {
  const cs = await env.ctr(["c", "ls", "-q"]).catch(() => undefined);
  for (const id of cs?.stdout.split("\n").map((l) => l.trim()).filter(Boolean) ?? []) {
    await env.ctr(["c", "label", id, `${status}=`]).catch(() => {});
  }
  await new Promise((r) => setTimeout(r, 500));
}

async function cleanUp(env: Env, ids: string[]): Promise<void> {
  try {
    await stopMonitoring(env);
    await teardown(env, { keepDaemon: true });
    const left = (await Promise.all(ids.map((id) => leftovers(env, id)))).flat();
    assert.deepEqual(left, []);
  } finally {
    await teardown(env);
  }
}

/**
 * Each shim with a log URI it writes: a plain file (runc's shim), and for Berth's shim the json-file URI
 * of `berth run` (`_BERTH_INTERNAL_LOGGING=json-file`), which the shim writes itself.
 */
const logCases: { shim: ShimKind; uri: (file: string) => string; lines: (text: string) => string[] }[] = [
  { shim: "runc", uri: (file) => `file://${file}`, lines: (t) => t.split("\n").filter((l) => l !== "") },
  {
    shim: "berth",
    uri: (file) =>
      `binary://${Deno.execPath()}?${new URLSearchParams({
        _BERTH_INTERNAL_LOGGING: "json-file",
        path: file,
      })}`,
    lines: (t) =>
      t.split("\n").filter((l) => l !== "").map((l) => (JSON.parse(l) as { log: string }).log.trimEnd()),
  },
];

for (const { shim, uri, lines } of logCases) {
  Deno.test({
    name:
      `A killed task of a restart=always container runs again within seconds, with its log URI (${shim} shim)`,
    ignore: shim === "runc" && !hasShim,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const env = await setup(undefined, shim);
      const log = `${env.daemon.dir}/logs/always.log`;
      try {
        await runLabelled(
          env,
          "always",
          { [status]: "running", [policy]: "always", "containerd.io/restart.loguri": uri(log) },
          ["sh", "-c", "echo started; sleep 1000"],
          ["--log-uri", uri(log)],
        );
        const first = await until("the task to run", 5000, async () => {
          const t = await taskOf(env, "always");
          return t?.status === "RUNNING" ? t : undefined;
        });
        const killedAt = Date.now();
        assert.equal((await env.ctr(["task", "kill", "-s", "SIGKILL", "always"])).code, 0);
        const second = await until("the task to run again with a new pid", 5000, async () => {
          const t = await taskOf(env, "always");
          return t?.status === "RUNNING" && t.pid !== first.pid ? t : undefined;
        });
        // Well within containerd's 10 s interval: the exit event started it.
        assert.ok(Date.now() - killedAt < 5000);
        assert.notEqual(second.pid, first.pid);
        assert.equal((await labelsOf(env, "always"))[count], "1");
        const got = await until("the second start's output in the same log", 5000, async () => {
          const l = lines(await Deno.readTextFile(log).catch(() => ""));
          return l.length === 2 ? l : undefined;
        });
        assert.deepEqual(got, ["started", "started"]);
        assert.match(env.daemon.logs(), /restart monitor started task again/);
      } finally {
        await cleanUp(env, ["always"]);
      }
    },
  });
}

Deno.test({
  name:
    "on-failure:1 starts a failing task once more and then leaves it stopped; on-failure leaves exit 0 alone",
  ignore: !hasShim,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup();
    try {
      await runLabelled(env, "fails", { [status]: "running", [policy]: "on-failure:1" }, [
        "sh",
        "-c",
        "sleep 0.5; exit 3",
      ]);
      await runLabelled(env, "succeeds", { [status]: "running", [policy]: "on-failure" }, [
        "sh",
        "-c",
        "sleep 0.5; exit 0",
      ]);
      const first = await taskOf(env, "fails");
      assert.ok(first);
      await until("the failing task to be started again", 5000, async () => {
        const t = await taskOf(env, "fails");
        return t && t.pid !== first.pid ? t : undefined;
      });
      assert.equal((await labelsOf(env, "fails"))[count], "1");
      await until("the second run to fail too", 5000, async () => {
        const t = await taskOf(env, "fails");
        return t?.status === "STOPPED" ? t : undefined;
      });
      const after = await taskOf(env, "fails");
      await new Promise((r) => setTimeout(r, 2000));
      assert.deepEqual(await taskOf(env, "fails"), after, "a third run despite on-failure:1");
      assert.equal((await labelsOf(env, "fails"))[count], "1");

      const ok = await taskOf(env, "succeeds");
      assert.deepEqual(ok?.status, "STOPPED");
      assert.equal((await labelsOf(env, "succeeds"))[count], undefined);
    } finally {
      await cleanUp(env, ["fails", "succeeds"]);
    }
  },
});

Deno.test({
  name: "An unless-stopped container stopped explicitly stays down when its task is killed",
  ignore: !hasShim,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup();
    try {
      await runLabelled(env, "held", { [status]: "running", [policy]: "unless-stopped" }, ["sleep", "1000"]);
      // What `nerdctl stop` does before it signals the task.
      assert.equal((await env.ctr(["c", "label", "held", `${stoppedByHand}=true`])).code, 0);
      assert.equal((await env.ctr(["task", "kill", "-s", "SIGKILL", "held"])).code, 0);
      await until("the task to stop", 5000, async () => {
        const t = await taskOf(env, "held");
        return t?.status === "STOPPED" ? t : undefined;
      });
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal((await taskOf(env, "held"))?.status, "STOPPED");
      assert.equal((await labelsOf(env, "held"))[count], undefined);
    } finally {
      await cleanUp(env, ["held"]);
    }
  },
});

Deno.test({
  name: "A task killed while the daemon was down (SIGKILL) runs again when the daemon starts",
  ignore: !hasShim,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup();
    try {
      await runLabelled(env, "boot", { [status]: "running", [policy]: "always" }, ["sleep", "1000"]);
      const first = await taskOf(env, "boot");
      assert.equal(first?.status, "RUNNING");
      await env.daemon.stop("SIGKILL");
      Deno.kill(first.pid, "SIGKILL");
      await until("the container process to be gone", 5000, () => processGone(first.pid));
      env.daemon = await startDaemon({ ...daemonFor("runc"), dir: env.daemon.dir });
      env.ctr = (args, o) => runCtr(env.daemon.address, env.ns, args, o?.timeoutMs);
      const again = await until("the task to run again after the daemon started", 8000, async () => {
        const t = await taskOf(env, "boot");
        return t?.status === "RUNNING" && t.pid !== first.pid ? t : undefined;
      });
      assert.notEqual(again.pid, first.pid);
      assert.equal((await labelsOf(env, "boot"))[count], "1");
    } finally {
      await cleanUp(env, ["boot"]);
    }
  },
});

Deno.test({
  name: 'With interval = "1s" the monitor kills a task whose container\'s desired status is stopped',
  ignore: !hasShim,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup();
    try {
      // Restart on the same folders with the restart plugin's config section (containerd 1.6's key).
      await env.daemon.stop();
      const config = `${shimConfig}[plugins."io.containerd.internal.v1.restart"]\n  interval = "1s"\n`;
      env.daemon = await startDaemon({ config, dir: env.daemon.dir });
      env.ctr = (args, o) => runCtr(env.daemon.address, env.ns, args, o?.timeoutMs);
      const plugins = (await env.ctr(["plugins", "ls"])).stdout;
      assert.match(plugins, /^io\.containerd\.internal\.v1\s+restart\s+-\s+ok\s*$/m);
      assert.doesNotMatch(env.daemon.logs(), /config key is not implemented/);

      await runLabelled(env, "down", { [status]: "stopped" }, ["sleep", "1000"]);
      await until("the monitor to stop the task", 5000, async () => {
        const t = await taskOf(env, "down");
        return t === undefined ? true : undefined;
      });
      assert.match(env.daemon.logs(), /restart monitor stops task/);
    } finally {
      await cleanUp(env, ["down"]);
    }
  },
});
