/**
 * Docker's json-file logs as Berth writes them for a detached container (`ctr run -d --log-uri
 * binary://…?_BERTH_INTERNAL_LOGGING=json-file&path=…`): by Berth's shim itself, and by Berth run as the
 * logging binary of containerd's runc shim. Read back with the same reader `berth logs` uses.
 */
import assert from "node:assert/strict";
import { type JsonLogEntry, readJsonLog } from "../src/core/logs/json_file.ts";
import { mainTs, startDaemon } from "./helpers/daemon.ts";
import { daemonFor, type Env, hasShim, leftovers, runCtr, setup, teardown } from "./helpers/tasks.ts";
import { processesWith } from "./helpers/procs.ts";

const RFC3339_NANO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

function logUri(binary: string, path: string, extra: Record<string, string> = {}): string {
  const query = new URLSearchParams({ _BERTH_INTERNAL_LOGGING: "json-file", path, ...extra });
  return `binary://${binary}?${query}`;
}

async function entries(path: string): Promise<JsonLogEntry[]> {
  const out: JsonLogEntry[] = [];
  for await (const e of readJsonLog(path)) out.push(e);
  return out;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function taskLine(ls: string, id: string): string {
  return ls.split("\n").find((l) => l.startsWith(`${id} `)) ?? "";
}

async function waitStopped(env: Env, id: string): Promise<void> {
  await waitFor(
    `${id} to stop`,
    async () => /STOPPED/.test(taskLine((await env.ctr(["task", "ls"])).stdout, id)),
  );
}

async function removeTask(env: Env, id: string): Promise<void> {
  await env.ctr(["task", "kill", "-s", "SIGKILL", id]).catch(() => {});
  await waitStopped(env, id);
  await env.ctr(["task", "rm", "-f", id]);
  await env.ctr(["c", "rm", id]);
}

/** Asserts the times are docker's format, within [from, to] and never going back. */
function assertTimes(list: readonly JsonLogEntry[], from: number, to: number): void {
  let last = 0n;
  for (const e of list) {
    assert.match(e.time, RFC3339_NANO_UTC);
    const ns = Temporal.Instant.from(e.time).epochNanoseconds;
    assert.ok(ns >= BigInt(from) * 1_000_000n && ns <= BigInt(to + 1) * 1_000_000n, `${e.time} out of range`);
    assert.ok(ns >= last, `${e.time} goes back`);
    last = ns;
  }
}

/** The numbers of `<prefix><n>` lines, which must follow each other without a gap. */
function contiguous(list: readonly JsonLogEntry[], prefix: string): number[] {
  const nums = list.map((e) => Number(e.log.slice(prefix.length).split(/[^0-9]/)[0]));
  nums.forEach((n, i) =>
    assert.equal(n, nums[0]! + i, `line ${i} is ${prefix}${n}: ${JSON.stringify(nums)}`)
  );
  return nums;
}

Deno.test({
  name: "Berth's shim writes a json-file log: both streams, rotation, and through a daemon restart",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const env = await setup(undefined, "berth");
    const dir = await Deno.makeTempDir({ prefix: "berth-jsonlog-" });
    // Berth's shim writes the log itself: the binary the URI names is never run.
    const binary = `${dir}/no-such-berth`;
    try {
      await t.step(
        "stdout and stderr become json lines stamped in UTC; the last partial line at exit",
        async () => {
          const path = `${dir}/j1/j1-json.log`;
          const from = Date.now();
          const run = await env.ctr([
            "run",
            "-d",
            "--log-uri",
            logUri(binary, path),
            env.image,
            "j1",
            "sh",
            "-c",
            "echo out1; echo err1 >&2; sleep 1; echo out2; printf 'no newline'",
          ]);
          assert.equal(run.code, 0, run.stderr);
          try {
            await waitFor(
              "the first lines",
              async () => (await entries(path).catch(() => [])).length >= 2,
              5_000,
            );
            await waitStopped(env, "j1");
            await waitFor(
              "the last partial line",
              async () => (await entries(path)).at(-1)?.log === "no newline",
            );
            const got = await entries(path);
            assert.deepEqual(got.map((e) => [e.stream, e.log]).sort(), [
              ["stderr", "err1\n"],
              ["stdout", "no newline"],
              ["stdout", "out1\n"],
              ["stdout", "out2\n"],
            ]);
            assert.deepEqual(
              got.slice(2).map((e) => e.log),
              ["out2\n", "no newline"],
            );
            assertTimes(got, from, Date.now());
            // Every line is a JSON object in docker's field order.
            for (const line of (await Deno.readTextFile(path)).trimEnd().split("\n")) {
              assert.match(line, /^\{"log":".*","stream":"std(out|err)","time":"[^"]+"\}$/);
            }
          } finally {
            await removeTask(env, "j1");
          }
          assert.deepEqual(await leftovers(env, "j1"), []);
        },
      );

      await t.step("the log rotates at max-size and keeps max-file files, newest as .1", async () => {
        const path = `${dir}/j2/j2-json.log`;
        const run = await env.ctr([
          "run",
          "-d",
          "--log-uri",
          logUri(binary, path, { "max-size": "2k", "max-file": "3" }),
          env.image,
          "j2",
          "sh",
          "-c",
          'i=0; while [ $i -lt 300 ]; do echo "line-$i-abcdefghijklmnopqrstuvwxyz"; i=$((i+1)); done',
        ]);
        assert.equal(run.code, 0, run.stderr);
        try {
          await waitStopped(env, "j2");
          await waitFor(
            "the last line",
            async () => (await entries(path)).at(-1)?.log.startsWith("line-299-") ?? false,
          );
          const names = [...Deno.readDirSync(`${dir}/j2`)].map((e) => e.name).sort();
          assert.deepEqual(names, ["j2-json.log", "j2-json.log.1", "j2-json.log.2"]);
          for (const name of names) {
            // A file may pass max-size by the one line that reached it, as docker's do.
            assert.ok(Deno.statSync(`${dir}/j2/${name}`).size < 2048 + 120, name);
          }
          const nums = contiguous(await entries(path), "line-");
          assert.equal(nums.at(-1), 299);
          assert.ok(nums.length < 300 && nums.length > 40, `${nums.length} lines kept`);
        } finally {
          await removeTask(env, "j2");
        }
      });

      await t.step(
        "the shim keeps writing while the daemon is killed, stopped and started again",
        async () => {
          const path = `${dir}/j3/j3-json.log`;
          const run = await env.ctr([
            "run",
            "-d",
            "--log-uri",
            logUri(binary, path),
            env.image,
            "j3",
            "sh",
            "-c",
            "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done",
          ]);
          assert.equal(run.code, 0, run.stderr);
          const count = async () => (await entries(path).catch(() => [])).length;
          // What the waits below saw: 3 ticks, then 10 while down and 5 after each restart, at least.
          let seen = 0;
          try {
            await waitFor("the first ticks", async () => (await count()) >= 3);
            for (const signal of ["SIGKILL", "SIGTERM"] as const) {
              await env.daemon.stop(signal);
              const down = await count();
              await waitFor(
                `ticks while the daemon is down after ${signal}`,
                async () => (await count()) >= down + 10,
              );
              env.daemon = await startDaemon({ ...daemonFor("berth"), dir: env.daemon.dir });
              env.ctr = (args, o) => runCtr(env.daemon.address, env.ns, args, o?.timeoutMs);
              assert.match(taskLine((await env.ctr(["task", "ls"])).stdout, "j3"), /RUNNING/);
              const up = await count();
              await waitFor("ticks after the restart", async () => (await count()) >= up + 5);
            }
            seen = await count();
          } finally {
            await removeTask(env, "j3");
          }
          // Not a line lost or repeated across both restarts.
          const got = await entries(path);
          assert.ok(seen >= 33 && got.length >= seen, `${got.length} ticks, ${seen} seen before the removal`);
          contiguous(got, "tick");
          assert.deepEqual(await leftovers(env, "j3"), []);
        },
      );
    } finally {
      await teardown(env);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "containerd's runc shim runs Berth as the json-file logging binary (main.ts _BERTH_INTERNAL_LOGGING)",
  ignore: !hasShim,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup(undefined, "runc");
    const dir = await Deno.makeTempDir({ prefix: "berth-jsonlog-runc-" });
    // From source the executable is deno: a script stands in for a compiled berth. The shim gives the
    // binary no environment beyond CONTAINER_ID and CONTAINER_NAMESPACE, so deno's cache is named here.
    const binary = `${dir}/berth`;
    const path = `${dir}/r1/r1-json.log`;
    const denoEnv = ["HOME", "DENO_DIR"].filter((k) => Deno.env.get(k)).map((k) =>
      `export ${k}='${Deno.env.get(k)}'\n`
    ).join("");
    await Deno.writeTextFile(
      binary,
      `#!/bin/sh\n${denoEnv}exec '${Deno.execPath()}' run -A --quiet '${mainTs}' "$@"\n`,
      { mode: 0o755 },
    );
    try {
      const from = Date.now();
      const run = await env.ctr([
        "run",
        "-d",
        "--log-uri",
        logUri(binary, path, { "max-size": "1m", "max-file": "2" }),
        env.image,
        "r1",
        "sh",
        "-c",
        "echo out1; echo err1 >&2; printf 'no newline'",
      ], { timeoutMs: 60_000 });
      assert.equal(run.code, 0, run.stderr);
      try {
        await waitStopped(env, "r1");
      } finally {
        await removeTask(env, "r1");
      }
      // From source the logging binary is a whole deno start: under a loaded machine that takes a while.
      await waitFor("the logging binary's last line", async () => (await entries(path)).length === 3, 45_000);
      const got = await entries(path);
      assert.deepEqual(got.map((e) => [e.stream, e.log]).sort(), [
        ["stderr", "err1\n"],
        ["stdout", "no newline"],
        ["stdout", "out1\n"],
      ]);
      assertTimes(got.filter((e) => e.stream === "stdout"), from, Date.now());
      await waitFor(
        "the logging binary to end",
        () => Promise.resolve(processesWith(path).length === 0),
        15_000,
      );
      assert.deepEqual(await leftovers(env, "r1"), []);
    } finally {
      for (const pid of processesWith(path)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      await teardown(env);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
