/**
 * Containers and tasks end to end: Debian's `ctr` against a real Berth daemon, images pulled from a real
 * registry, containers run by a real shim and runc.
 */
import assert from "node:assert/strict";
import { hasShim, leftovers, setup, type ShimKind, teardown } from "./helpers/tasks.ts";

// Berth's own shim (the default for io.containerd.runc.v2) and Debian's runc shim, through one daemon.
for (const shim of ["berth", "runc"] as ShimKind[]) {
  Deno.test({
    name:
      `ctr against Berth runs containers through the ${shim} shim: output, exit codes, lifecycle, OOM, bad input`,
    ignore: shim === "runc" && !hasShim,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn(t) {
      const env = await setup(undefined, shim);
      try {
        await t.step("ctr run --rm prints the command's output", async () => {
          const r = await env.ctr(["run", "--rm", env.image, "c1", "/bin/echo", "hi"]);
          assert.equal(r.code, 0, r.stderr);
          assert.equal(r.stdout.trim(), "hi");
          assert.deepEqual(await leftovers(env, "c1"), []);
        });

        await t.step("ctr run --rm returns the container's exit status", async () => {
          const r = await env.ctr(["run", "--rm", env.image, "c2", "sh", "-c", "exit 7"]);
          assert.equal(r.code, 7, r.stderr);
        });

        await t.step(
          "a detached task is listed, exec'd into, paused, resumed, killed and removed",
          async () => {
            const run = await env.ctr(["run", "-d", env.image, "d1", "sleep", "1000"]);
            assert.equal(run.code, 0, run.stderr);
            const ls = await env.ctr(["task", "ls"]);
            assert.match(ls.stdout, /^d1\s+\d+\s+RUNNING$/m);
            const pid = Number(/^d1\s+(\d+)/m.exec(ls.stdout)![1]);

            const exec = await env.ctr([
              "task",
              "exec",
              "--exec-id",
              "e1",
              "d1",
              "sh",
              "-c",
              "echo in-exec; exit 3",
            ]);
            assert.equal(exec.stdout.trim(), "in-exec");
            assert.equal(exec.code, 3);

            assert.equal((await env.ctr(["task", "pause", "d1"])).code, 0);
            assert.match((await env.ctr(["task", "ls"])).stdout, /^d1\s+\d+\s+PAUSED$/m);
            assert.equal((await env.ctr(["task", "resume", "d1"])).code, 0);
            assert.match((await env.ctr(["task", "ls"])).stdout, /^d1\s+\d+\s+RUNNING$/m);

            const ps = await env.ctr(["task", "ps", "d1"]);
            assert.match(ps.stdout, new RegExp(`^${pid}\\s`, "m"));
            const metrics = await env.ctr(["task", "metrics", "d1"]);
            assert.equal(metrics.code, 0, metrics.stderr);
            assert.match(metrics.stdout, /pids\.current\s+1/);

            assert.equal((await env.ctr(["task", "kill", "-s", "SIGKILL", "d1"])).code, 0);
            let stopped = "";
            for (let i = 0; i < 50 && !/STOPPED/.test(stopped); i++) {
              stopped = (await env.ctr(["task", "ls"])).stdout;
              await new Promise((r) => setTimeout(r, 100));
            }
            assert.match(stopped, /^d1\s+\d+\s+STOPPED$/m);
            assert.equal((await env.ctr(["task", "rm", "d1"])).code, 0);
            assert.equal((await env.ctr(["c", "rm", "d1"])).code, 0);
            assert.deepEqual(await leftovers(env, "d1"), []);
            assert.equal((await env.ctr(["c", "ls", "-q"])).stdout.trim(), "");
          },
        );

        await t.step(
          "a task over its memory limit is OOM-killed and a /tasks/oom event is published",
          async () => {
            const events = new Deno.Command("ctr", {
              args: ["--address", env.daemon.address, "events"],
              stdout: "piped",
              stderr: "null",
            }).spawn();
            try {
              await new Promise((r) => setTimeout(r, 300));
              const r = await env.ctr([
                "run",
                "--rm",
                "--memory-limit",
                String(16 << 20),
                env.image,
                "oom1",
                "sh",
                "-c",
                "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
              ]);
              assert.equal(r.code, 137, r.stderr);
              await new Promise((r) => setTimeout(r, 300));
            } finally {
              events.kill("SIGTERM");
            }
            const text = new TextDecoder().decode((await events.output()).stdout);
            assert.match(text, new RegExp(`${env.ns} /tasks/oom \\{"container_id":"oom1"\\}`));
            assert.match(text, /\/tasks\/exit \{"container_id":"oom1".*"exit_status":137/);
          },
        );

        await t.step(
          "with --runc-root, runc's state is in <root>/<namespace>; once runc deleted it, kill says not found",
          async () => {
            const root = await Deno.makeTempDir({ prefix: "berth-runc-root-" });
            try {
              const run = await env.ctr([
                "run",
                "-d",
                "--runc-root",
                root,
                env.image,
                "rr1",
                "sleep",
                "1000",
              ]);
              assert.equal(run.code, 0, run.stderr);
              const runc = (...args: string[]) =>
                new Deno.Command("runc", { args: ["--root", `${root}/${env.ns}`, ...args] }).output();
              const list = await runc("list", "-q");
              assert.equal(new TextDecoder().decode(list.stdout).trim(), "rr1");
              const gone = await runc("delete", "--force", "rr1");
              assert.ok(gone.success, new TextDecoder().decode(gone.stderr));
              const kill = await env.ctr(["task", "kill", "-s", "SIGKILL", "rr1"]);
              assert.equal(kill.code, 1);
              assert.match(kill.stderr, /not found/);
              let ls = "";
              for (let i = 0; i < 50 && !/STOPPED/.test(ls); i++) {
                ls = (await env.ctr(["task", "ls"])).stdout;
                await new Promise((r) => setTimeout(r, 100));
              }
              assert.match(ls, /^rr1\s+\d+\s+STOPPED$/m);
              assert.equal((await env.ctr(["task", "rm", "rr1"])).code, 0);
              assert.equal((await env.ctr(["c", "rm", "rr1"])).code, 0);
              assert.deepEqual(await leftovers(env, "rr1"), []);
            } finally {
              // Through the shim first: it knows where its runc keeps the container, wherever that is.
              await env.ctr(["task", "rm", "-f", "rr1"]).catch(() => {});
              await env.ctr(["c", "rm", "rr1"]).catch(() => {});
              await new Deno.Command("runc", {
                args: ["--root", `${root}/${env.ns}`, "delete", "--force", "rr1"],
                stdout: "null",
                stderr: "null",
              }).output();
              await Deno.remove(root, { recursive: true });
            }
          },
        );

        await t.step("bad input gets a clear error and leaves nothing behind", async () => {
          const unknown = await env.ctr([
            "run",
            "--rm",
            "--runtime",
            "io.containerd.nope.v1",
            env.image,
            "b1",
            "true",
          ]);
          assert.equal(unknown.code, 1);
          assert.match(
            unknown.stderr,
            /runtime "io\.containerd\.nope\.v1" binary not installed "containerd-shim-nope-v1"/,
          );
          assert.deepEqual(await leftovers(env, "b1"), []);

          const missing = await env.ctr(["run", "--rm", env.image, "b2", "/bin/nonexistent"]);
          assert.equal(missing.code, 1);
          assert.match(missing.stderr, /\/bin\/nonexistent.*no such file or directory/);
          assert.deepEqual(await leftovers(env, "b2"), []);

          const image = await env.ctr(["run", "--rm", `${env.registry.host}/berth/absent:v1`, "b3", "true"]);
          assert.equal(image.code, 1);
          assert.match(image.stderr, /absent:v1.*not found/);

          assert.equal((await env.ctr(["run", "-d", env.image, "b4", "sleep", "100"])).code, 0);
          const dup = await env.ctr(["run", "-d", env.image, "b4", "sleep", "100"]);
          assert.equal(dup.code, 1);
          assert.match(dup.stderr, /already exists/);
          assert.match((await env.ctr(["task", "ls"])).stdout, /^b4\s+\d+\s+RUNNING$/m);
          await env.ctr(["task", "kill", "-s", "SIGKILL", "b4"]);
          await new Promise((r) => setTimeout(r, 300));
          await env.ctr(["task", "rm", "-f", "b4"]);
          await env.ctr(["c", "rm", "b4"]);
          assert.deepEqual(await leftovers(env, "b4"), []);
        });
      } finally {
        await teardown(env);
      }
    },
  });
}
