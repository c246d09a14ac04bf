/**
 * Container output as Debian's `ctr` sees it, through Berth's shim and, as the reference, containerd's
 * runc shim: it arrives while the container runs (ctr run, task attach, task exec), and `--log-uri` sends
 * it to a file or to a logging binary as containerd does.
 */
import assert from "node:assert/strict";
import { type Env, hasShim, leftovers, setup, type ShimKind, teardown } from "./helpers/tasks.ts";
import { processesWith } from "./helpers/procs.ts";

interface TimedLine {
  readonly text: string;
  /** Milliseconds since the command started. */
  readonly at: number;
}

interface TimedRun {
  readonly lines: TimedLine[];
  /** When the command exited, in milliseconds since it started. */
  readonly exitedAt: number;
  readonly code: number;
  readonly stderr: string;
}

/** Runs ctr and notes when each line of its stdout arrived. */
async function timedCtr(env: Env, args: string[], timeoutMs = 30_000): Promise<TimedRun> {
  const started = Date.now();
  const child = new Deno.Command("ctr", {
    args: ["--address", env.daemon.address, "--namespace", env.ns, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).spawn();
  const lines: TimedLine[] = [];
  const stderr = new Response(child.stderr).text();
  let pending = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    for (let nl; (nl = pending.indexOf("\n")) >= 0; pending = pending.slice(nl + 1)) {
      lines.push({ text: pending.slice(0, nl), at: Date.now() - started });
    }
  }
  const { code } = await child.status;
  return { lines, exitedAt: Date.now() - started, code, stderr: await stderr };
}

/** Asserts that the first line came at least `ms` before the command ended: it was not held back. */
function assertLive(run: TimedRun, first: string, ms: number): void {
  assert.equal(run.lines[0]?.text, first, `${run.stderr} ${JSON.stringify(run.lines)}`);
  assert.ok(
    run.exitedAt - run.lines[0]!.at >= ms,
    `"${first}" arrived ${run.lines[0]!.at} ms after the start, ${
      run.exitedAt - run.lines[0]!.at
    } ms before the end`,
  );
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function removeTask(env: Env, id: string): Promise<void> {
  await env.ctr(["task", "kill", "-s", "SIGKILL", id]).catch(() => {});
  await waitFor(
    `${id} to stop`,
    async () => !/RUNNING/.test(taskLine((await env.ctr(["task", "ls"])).stdout, id)),
  );
  await env.ctr(["task", "rm", "-f", id]);
  await env.ctr(["c", "rm", id]);
}

function taskLine(ls: string, id: string): string {
  return ls.split("\n").find((l) => l.startsWith(`${id} `)) ?? "";
}

/**
 * A logging binary as containerd documents it: output on fds 3 and 4, ready once fd 5 is closed. Its
 * readers do not keep a copy of fd 5: containerd's shim waits for the pipe's end, which would never come.
 */
const LOGGER = '#!/bin/sh\nout="$2"\necho "$CONTAINER_NAMESPACE/$CONTAINER_ID" > "$out.id"\n' +
  'cat <&3 5>&- > "$out.stdout" &\ncat <&4 5>&- > "$out.stderr" &\nexec 5>&-\nwait\n';

for (const shim of ["berth", "runc"] as ShimKind[]) {
  Deno.test({
    name: `Container output reaches ctr as it is written, and --log-uri works, through the ${shim} shim`,
    ignore: shim === "runc" && !hasShim,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn(t) {
      const env = await setup(undefined, shim);
      const dir = await Deno.makeTempDir({ prefix: "berth-stdio-" });
      try {
        await t.step("ctr run prints a container's first line long before it exits", async () => {
          const run = await timedCtr(env, [
            "run",
            "--rm",
            env.image,
            "live1",
            "sh",
            "-c",
            "echo one; sleep 4; echo two; echo three >&2",
          ]);
          assert.equal(run.code, 0, run.stderr);
          assert.deepEqual(run.lines.map((l) => l.text), ["one", "two"]);
          assert.equal(run.stderr, "three\n");
          assertLive(run, "one", 2_500);
          assert.deepEqual(await leftovers(env, "live1"), []);
        });

        await t.step("ctr task attach and ctr task exec get a running container's output live", async () => {
          const ticks = "i=0; while [ $i -lt 5 ]; do echo tick$i; i=$((i+1)); sleep 1; done";
          const run = await env.ctr(["run", "-d", env.image, "live2", "sh", "-c", `sleep 1; ${ticks}`]);
          assert.equal(run.code, 0, run.stderr);
          try {
            // Attached before the first tick: the ticks come one a second until the container exits.
            const attach = await timedCtr(env, ["task", "attach", "live2"]);
            assert.equal(attach.code, 0, attach.stderr);
            assert.deepEqual(attach.lines.map((l) => l.text), ["tick0", "tick1", "tick2", "tick3", "tick4"]);
            assertLive(attach, "tick0", 2_500);
          } finally {
            await removeTask(env, "live2");
          }
          assert.equal((await env.ctr(["run", "-d", env.image, "live3", "sleep", "1000"])).code, 0);
          try {
            const exec = await timedCtr(env, ["task", "exec", "--exec-id", "e1", "live3", "sh", "-c", ticks]);
            assert.equal(exec.code, 0, exec.stderr);
            assert.equal(exec.lines.length, 5);
            assertLive(exec, "tick0", 2_500);
          } finally {
            await removeTask(env, "live3");
          }
          assert.deepEqual(await leftovers(env, "live2"), []);
          assert.deepEqual(await leftovers(env, "live3"), []);
        });

        await t.step(
          "--log-uri file:// appends both streams to the file while the container runs",
          async () => {
            const path = `${dir}/file/sub/ctr.log`;
            const run = await env.ctr([
              "run",
              "-d",
              "--log-uri",
              `file://${path}`,
              env.image,
              "log1",
              "sh",
              "-c",
              "echo out; echo err >&2; sleep 4; echo done",
            ]);
            assert.equal(run.code, 0, run.stderr);
            try {
              await waitFor("both first lines in the log file", async () => {
                const text = await Deno.readTextFile(path).catch(() => "");
                return text.includes("out\n") && text.includes("err\n");
              }, 2_500);
              assert.match(taskLine((await env.ctr(["task", "ls"])).stdout, "log1"), /RUNNING/);
              await waitFor(
                "log1 to exit",
                async () => /STOPPED/.test(taskLine((await env.ctr(["task", "ls"])).stdout, "log1")),
              );
              assert.match(await Deno.readTextFile(path), /done\n$/);
              // An exec can log to a file too.
              const exec = await env.ctr(["run", "-d", env.image, "log2", "sleep", "1000"]);
              assert.equal(exec.code, 0, exec.stderr);
              const execLog = `${dir}/file/exec.log`;
              const e = await env.ctr([
                "task",
                "exec",
                "--exec-id",
                "e1",
                "--log-uri",
                `file://${execLog}`,
                "log2",
                "sh",
                "-c",
                "echo from-exec",
              ]);
              assert.equal(e.code, 0, e.stderr);
              assert.equal(e.stdout, "");
              assert.equal(await Deno.readTextFile(execLog), "from-exec\n");
            } finally {
              await removeTask(env, "log1");
              await removeTask(env, "log2");
            }
            assert.deepEqual(await leftovers(env, "log1"), []);
          },
        );

        await t.step("--log-uri with a bare path appends to that file as the container writes", async () => {
          const path = `${dir}/plain.log`;
          await Deno.writeTextFile(path, "before\n");
          const r = await env.ctr([
            "run",
            "-d",
            "--log-uri",
            path,
            env.image,
            "log3",
            "sh",
            "-c",
            "echo out; sleep 4; echo done",
          ]);
          assert.equal(r.code, 0, r.stderr);
          try {
            await waitFor(
              "the first line in the log file",
              async () => (await Deno.readTextFile(path)) === "before\nout\n",
              2_500,
            );
            await waitFor(
              "log3 to exit",
              async () => /STOPPED/.test(taskLine((await env.ctr(["task", "ls"])).stdout, "log3")),
            );
            assert.equal(await Deno.readTextFile(path), "before\nout\ndone\n");
          } finally {
            await removeTask(env, "log3");
          }
        });

        await t.step(
          "--log-uri binary:// hands the output to a logging binary, for a run and an exec",
          async () => {
            const logger = `${dir}/bin/logger-${shim}`;
            await Deno.mkdir(`${dir}/bin`, { recursive: true });
            await Deno.writeTextFile(logger, LOGGER, { mode: 0o755 });
            const out = `${dir}/bin/run`;
            const r = await env.ctr([
              "run",
              "--rm",
              "--log-uri",
              `binary://${logger}?out=${encodeURIComponent(out)}`,
              env.image,
              "log4",
              "sh",
              "-c",
              "echo to-out; echo to-err >&2",
            ]);
            assert.equal(r.code, 0, r.stderr);
            assert.equal(r.stdout, "");
            for (
              const [suffix, want] of [[".id", `${env.ns}/log4\n`], [".stdout", "to-out\n"], [
                ".stderr",
                "to-err\n",
              ]]
            ) {
              await waitFor(
                `${out}${suffix} to hold ${JSON.stringify(want)}`,
                async () => (await Deno.readTextFile(`${out}${suffix}`).catch(() => "")) === want,
              );
            }
            // Stopped and reaped once the task is deleted.
            await waitFor(
              "the logging binary to end",
              () => Promise.resolve(processesWith(logger).length === 0),
              5_000,
            );
            assert.deepEqual(await leftovers(env, "log4"), []);

            assert.equal((await env.ctr(["run", "-d", env.image, "log5", "sleep", "1000"])).code, 0);
            try {
              const execOut = `${dir}/bin/exec`;
              const e = await env.ctr([
                "task",
                "exec",
                "--exec-id",
                "x1",
                "--log-uri",
                `binary://${logger}?out=${encodeURIComponent(execOut)}`,
                "log5",
                "sh",
                "-c",
                "echo exec-out",
              ]);
              assert.equal(e.code, 0, e.stderr);
              // containerd's shim names an exec's logging binary by the exec's id.
              await waitFor(
                "the exec's log",
                async () =>
                  (await Deno.readTextFile(`${execOut}.stdout`).catch(() => "")) === "exec-out\n" &&
                  (await Deno.readTextFile(`${execOut}.id`).catch(() => "")) === `${env.ns}/x1\n`,
              );
            } finally {
              await removeTask(env, "log5");
            }
            await waitFor(
              "the exec's logging binary to end",
              () => Promise.resolve(processesWith(logger).length === 0),
              5_000,
            );
          },
        );
      } finally {
        await teardown(env);
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
