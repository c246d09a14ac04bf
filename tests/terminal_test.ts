/**
 * Terminals end to end: Debian's `ctr` (and Berth's CLI) under a real pty made by script(1), against a
 * Berth daemon whose shim hands the container a pty from runc's console socket.
 */
import assert from "node:assert/strict";
import { type Env, hasShim, leftovers, setup, type ShimKind, teardown } from "./helpers/tasks.ts";
import { mainTs } from "./helpers/daemon.ts";

const enc = new TextEncoder();

/** A command run under script(1): its stdin is a pty's input, its output what the pty shows. */
class PtySession {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #status: Promise<Deno.CommandStatus>;
  readonly #pump: Promise<void>;
  text = "";

  constructor(command: string) {
    const child = this.#child = new Deno.Command("script", {
      args: ["-qfec", command, "/dev/null"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#status = this.#child.status;
    const dec = new TextDecoder();
    this.#pump = (async () => {
      for await (const chunk of child.stdout) this.text += dec.decode(chunk, { stream: true });
    })();
    this.#child.stderr.pipeTo(new WritableStream({ write: (c) => void (this.text += dec.decode(c)) }))
      .catch(() => {});
  }

  async type(s: string): Promise<void> {
    await this.#writer.write(enc.encode(s));
  }

  /** Waits until the output (from `from` on) matches `re`; fails with what was seen. */
  async expect(re: RegExp, options: { from?: number; timeoutMs?: number } = {}): Promise<void> {
    const deadline = Date.now() + (options.timeoutMs ?? 15_000);
    while (!re.test(this.text.slice(options.from ?? 0))) {
      if (Date.now() > deadline) assert.fail(`${re} did not appear in:\n${this.text}`);
      await sleep(50);
    }
  }

  /** The exit code of the command in the session (script -e passes it on). */
  async exitCode(timeoutMs = 15_000): Promise<number> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const status = await Promise.race([
        this.#status,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`The session did not end within ${timeoutMs} ms:\n${this.text}`)),
            timeoutMs,
          );
        }),
      ]);
      await this.#pump;
      return status.code;
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    try {
      this.#child.kill("SIGKILL");
    } catch { /* exited */ }
    await this.#status;
    await this.#pump.catch(() => {});
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function ctrLine(env: Env, args: string): string {
  return `ctr --address ${env.daemon.address} --namespace ${env.ns} ${args}`;
}

function berthLine(env: Env, args: string): string {
  return `${Deno.execPath()} run -A --quiet ${mainTs} --address ${env.daemon.address} --namespace ${env.ns} ${args}`;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`Timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function removeTask(env: Env, id: string): Promise<void> {
  await env.ctr(["task", "kill", "-s", "SIGKILL", id]).catch(() => {});
  await waitFor(
    `${id} to stop`,
    async () =>
      !/RUNNING/.test(
        (await env.ctr(["task", "ls"])).stdout.split("\n").find((l) => l.startsWith(`${id} `)) ?? "",
      ),
  );
  await env.ctr(["task", "rm", "-f", id]);
  await env.ctr(["c", "rm", id]);
}

for (const shim of ["berth", "runc"] as ShimKind[]) {
  Deno.test({
    name: `ctr's terminals through the ${shim} shim: run -t, resize, attach and exec -t`,
    ignore: shim === "runc" && !hasShim,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn(t) {
      const env = await setup(undefined, shim);
      try {
        await t.step(
          "run -t echoes typed input, follows resizes and returns the shell's exit code",
          async () => {
            // A window change on ctr's terminal (the background stty, once told to) makes ctr send ResizePty.
            const flag = await Deno.makeTempFile();
            await Deno.remove(flag);
            const s = new PtySession(
              `stty cols 91 rows 37; (while [ ! -e ${flag} ]; do sleep 0.1; done; stty cols 120 rows 50 </dev/tty) & ` +
                ctrLine(env, `run -t --rm ${env.image} tty1 sh`),
            );
            try {
              await s.expect(/\/ # /);
              await s.type("echo hi-$((1+2))\n");
              await s.expect(/echo hi-\$\(\(1\+2\)\)/);
              await s.expect(/[\r\n]+hi-3[\r\n]+/);
              let from = s.text.length;
              await s.type("busybox stty size\n");
              await s.expect(/\n37 91[\r\n]+/, { from });
              await Deno.writeTextFile(flag, "");
              await waitFor("the resize", async () => {
                const r = await env.ctr([
                  "task",
                  "exec",
                  "--exec-id",
                  "sz",
                  "tty1",
                  "busybox",
                  "stty",
                  "-F",
                  "/proc/1/fd/0",
                  "size",
                ]);
                return r.stdout.trim() === "50 120";
              });
              from = s.text.length;
              await s.type("busybox stty size\n");
              await s.expect(/\n50 120[\r\n]+/, { from });
              await s.type("exit 3\n");
              assert.equal(await s.exitCode(), 3, s.text);
            } finally {
              await s.close();
              await Deno.remove(flag).catch(() => {});
            }
            assert.deepEqual(await leftovers(env, "tty1"), []);
          },
        );

        await t.step(
          "attach to a run -d -t container: typed input reaches it, output comes back",
          async () => {
            const run = new PtySession(ctrLine(env, `run -d -t ${env.image} att1 sh`));
            try {
              assert.equal(await run.exitCode(), 0, run.text);
            } finally {
              await run.close();
            }
            try {
              const s = new PtySession(`stty cols 100 rows 40; ${ctrLine(env, "task attach att1")}`);
              try {
                await sleep(500);
                await s.type("echo att-$((2*5)); busybox stty size\n");
                await s.expect(/[\r\n]+att-10[\r\n]+40 100[\r\n]+/);
                await s.type("exit 4\n");
                assert.equal(await s.exitCode(), 4, s.text);
              } finally {
                await s.close();
              }
            } finally {
              await removeTask(env, "att1");
            }
            assert.deepEqual(await leftovers(env, "att1"), []);
          },
        );

        await t.step(
          "exec -t into a running container is interactive and returns the exit code",
          async () => {
            assert.equal((await env.ctr(["run", "-d", env.image, "ex1", "sleep", "1000"])).code, 0);
            try {
              const s = new PtySession(
                `stty cols 77 rows 22; ${ctrLine(env, "task exec -t --exec-id e1 ex1 sh")}`,
              );
              try {
                await s.expect(/\/ # /);
                await s.type("echo ex-$((3*3)); busybox stty size\n");
                await s.expect(/[\r\n]+ex-9[\r\n]+22 77[\r\n]+/);
                await s.type("exit 6\n");
                assert.equal(await s.exitCode(), 6, s.text);
              } finally {
                await s.close();
              }
              // The exec is gone: another with the same id works.
              const again = await env.ctr(["task", "exec", "--exec-id", "e1", "ex1", "echo", "again"]);
              assert.equal(again.stdout.trim(), "again", again.stderr);
            } finally {
              await removeTask(env, "ex1");
            }
            assert.deepEqual(await leftovers(env, "ex1"), []);
          },
        );

        await t.step(
          "exec -t delivers every line of a large output and exits cleanly, time after time",
          async () => {
            assert.equal((await env.ctr(["run", "-d", env.image, "big1", "sleep", "1000"])).code, 0);
            try {
              for (let i = 0; i < 3; i++) {
                const s = new PtySession(ctrLine(env, `task exec -t --exec-id big${i} big1 seq 1 100000`));
                try {
                  assert.equal(await s.exitCode(60_000), 0, s.text.slice(-300));
                  const lines = s.text.split(/[\r\n]+/).filter(Boolean);
                  const wrong = lines.findIndex((l, n) => l !== String(n + 1));
                  assert.equal(wrong, -1, `run ${i}: line ${wrong + 1} is ${JSON.stringify(lines[wrong])}`);
                  assert.equal(
                    lines.length,
                    100_000,
                    `run ${i}: ${lines.length} lines, the last ${lines.at(-1)}`,
                  );
                } finally {
                  await s.close();
                }
              }
            } finally {
              await removeTask(env, "big1");
            }
            assert.deepEqual(await leftovers(env, "big1"), []);
          },
        );
      } finally {
        await teardown(env);
      }
    },
  });
}

Deno.test({
  name: "berth's CLI: run -d -t, then tasks exec -t and tasks attach are interactive with the client's size",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup(undefined, "berth");
    try {
      const run = new PtySession(berthLine(env, `ctr run -d -t ${env.image} b1 sh`));
      try {
        assert.equal(await run.exitCode(30_000), 0, run.text);
      } finally {
        await run.close();
      }
      try {
        const exec = new PtySession(
          `stty cols 66 rows 11; ${berthLine(env, "tasks exec -t --exec-id e1 b1 sh")}`,
        );
        try {
          await exec.expect(/\/ # /, { timeoutMs: 30_000 });
          await exec.type("echo bx-$((5*5)); busybox stty size\n");
          await exec.expect(/[\r\n]+bx-25[\r\n]+11 66[\r\n]+/);
          await exec.type("exit 2\n");
          assert.equal(await exec.exitCode(), 2, exec.text);
        } finally {
          await exec.close();
        }
        // An attach whose input ends at once must not close the terminal's input for the next one.
        const quiet = new Deno.Command("sh", {
          args: ["-c", `exec ${berthLine(env, "tasks attach b1")}`],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn();
        await sleep(1_500);
        quiet.kill("SIGKILL");
        await quiet.status;
        const attach = new PtySession(`stty cols 55 rows 12; ${berthLine(env, "tasks attach b1")}`);
        try {
          await waitFor("the attach to resize the terminal", async () => {
            const r = await env.ctr([
              "task",
              "exec",
              "--exec-id",
              "sz",
              "b1",
              "busybox",
              "stty",
              "-F",
              "/proc/1/fd/0",
              "size",
            ]);
            return r.stdout.trim() === "12 55";
          }, 30_000);
          await attach.type("echo ba-$((6*6))\n");
          await attach.expect(/[\r\n]+ba-36[\r\n]+/);
          await attach.type("exit 7\n");
          assert.equal(await attach.exitCode(), 7, attach.text);
        } finally {
          await attach.close();
        }
      } finally {
        await env.ctr(["task", "kill", "-s", "SIGKILL", "b1"]).catch(() => {});
        await env.ctr(["task", "rm", "-f", "b1"]).catch(() => {});
        await env.ctr(["c", "rm", "b1"]).catch(() => {});
      }
      assert.deepEqual(await leftovers(env, "b1"), []);
    } finally {
      await teardown(env);
    }
  },
});

Deno.test({
  name: "40 terminal containers run at once on Berth's shared shim, which still answers an exec -t",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup(undefined, "berth");
    const ids = Array.from({ length: 40 }, (_, i) => `pty${i}`);
    try {
      for (const id of ids) {
        const s = new PtySession(ctrLine(env, `run -d -t ${env.image} ${id} sh`));
        try {
          assert.equal(await s.exitCode(15_000), 0, `${id}: ${s.text}`);
        } finally {
          await s.close();
        }
      }
      const ls = (await env.ctr(["task", "ls"])).stdout;
      for (const id of ids) assert.match(ls, new RegExp(`^${id}\\s+\\d+\\s+RUNNING$`, "m"));
      const s = new PtySession(
        ctrLine(env, `task exec -t --exec-id e1 ${ids.at(-1)} sh -c "echo still-\\$((40+1))"`),
      );
      try {
        await s.expect(/still-41/, { timeoutMs: 10_000 });
        assert.equal(await s.exitCode(10_000), 0, s.text);
      } finally {
        await s.close();
      }
    } finally {
      for (const id of ids) await env.ctr(["task", "kill", "-s", "SIGKILL", id]).catch(() => {});
      await teardown(env);
      for (const id of ids) assert.deepEqual(await leftovers(env, id), []);
    }
  },
});
