/**
 * Berth's own CLI end to end: `berth run`, `containers`, `tasks` against a real daemon, images pulled by
 * `run` itself from a real registry, containers run by Berth's shim (and once by containerd's runc shim).
 */
import assert from "node:assert/strict";
import { buildFixtureImages, pushFixtures } from "./fixtures/images.ts";
import { berth, berthCommand, mainTs, startDaemon, type TestDaemon } from "./helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "./helpers/registry.ts";
import { hasShim, removeNamespaceCgroups, shimConfig } from "./helpers/tasks.ts";
import { type CriRuntime, startCriRuntime } from "./helpers/cri.ts";

interface Env {
  daemon: TestDaemon;
  ns: string;
  b(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
}

function envFor(daemon: TestDaemon): Env {
  const ns = `br${crypto.randomUUID().slice(0, 8)}`;
  return { daemon, ns, b: (args) => berth(["--address", daemon.address, "--namespace", ns, ...args]) };
}

async function pushedImage(registry: TestRegistry): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "berth-fixtures-" });
  try {
    const pushed = await pushFixtures(registry, await buildFixtureImages(dir), { names: ["single"] });
    return pushed.single.reference;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Kills and removes every task and container of the namespace (what a failed step may leave). */
async function cleanup(env: Env): Promise<void> {
  const ids = (r: { stdout: string }) => r.stdout.split("\n").map((l) => l.trim()).filter(Boolean);
  for (const id of ids(await env.b(["tasks", "ls", "-q"]))) {
    await env.b(["tasks", "rm", "-f", id]);
  }
  for (const id of ids(await env.b(["c", "ls", "-q"]))) await env.b(["c", "rm", id]);
}

/** The API methods the daemon logged (at debug level) after offset `from`, once `last` is among them. */
async function callsSince(daemon: TestDaemon, from: number, last: string): Promise<string[]> {
  const calls = () => [...daemon.logs().slice(from).matchAll(/ method=(\S+)/g)].map((m) => m[1]!);
  for (let i = 0; i < 50 && !calls().some((m) => m.endsWith(last)); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return calls();
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

async function snapshotKeys(env: Env): Promise<string[]> {
  const r = await env.b(["snapshots", "ls"]);
  return r.stdout.split("\n").slice(1).map((l) => l.split(/\s+/)[0]!).filter(Boolean);
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test({
  name: "berth run, containers and tasks drive containers through Berth's shim like ctr",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const registry = await startRegistry();
    const bindDir = await Deno.makeTempDir({ prefix: "berth-bind-" });
    let daemon: TestDaemon | undefined;
    let env: Env | undefined;
    try {
      const image = await pushedImage(registry);
      daemon = await startDaemon();
      env = envFor(daemon);
      const e = env;

      await t.step("run --rm pulls the missing image, prints the output and leaves nothing", async () => {
        const from = e.daemon.logs().length;
        const r = await e.b(["ctr", "run", "--rm", "--plain-http", image, "c1", "/bin/echo", "hi"]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, "hi\n");
        // The one call (berth.run.v1.Run) finds no image and makes nothing; the long way pulls, and the
        // pull reports the image and the chain ID it unpacked: run asks for neither again.
        const calls = await callsSince(e.daemon, from, "Snapshots/Remove");
        const run = calls.indexOf("berth.run.v1.Run/Run");
        assert.ok(run > 0, calls.join(" "));
        assert.deepEqual(calls.slice(0, run), ["containerd.services.images.v1.Images/Get"], calls.join(" "));
        const longWay = calls.slice(run + 1);
        assert.equal(longWay.filter((m) => m.endsWith("Images/Get")).length, 1, calls.join(" "));
        assert.ok(
          !longWay.some((m) => m.endsWith("Snapshots/Stat") || m.endsWith("Transfer/Unpack")),
          calls.join(" "),
        );
        assert.equal((await e.b(["c", "ls", "-q"])).stdout, "");
        assert.ok(!(await snapshotKeys(e)).includes("c1"));
      });

      await t.step("run --rm exits with the container's exit status", async () => {
        const from = e.daemon.logs().length;
        const r = await e.b([
          "ctr",
          "run",
          "--rm",
          image,
          "c2",
          "sh",
          "-c",
          "echo out; echo err >&2; exit 7",
        ]);
        assert.equal(r.code, 7, r.stderr);
        assert.equal(r.stdout, "out\n");
        assert.equal(r.stderr, "err\n");
        // The image is local: one call to the Run service made ctr's sequence in the daemon (its steps end
        // before it does).
        const calls = await callsSince(e.daemon, from, "berth.run.v1.Run/Run");
        assert.equal(calls.filter((m) => m === "berth.run.v1.Run/Run").length, 1, calls.join(" "));
        for (
          const step of [
            "Containers/Create",
            "Tasks/Create",
            "Tasks/Start",
            "Tasks/Delete",
            "Snapshots/Remove",
          ]
        ) {
          assert.equal(calls.filter((m) => m.endsWith(step)).length, 1, `${step}: ${calls.join(" ")}`);
        }
        assert.equal((await e.b(["c", "ls", "-q"])).stdout, "");
      });

      await t.step(
        "env, cwd, user by name, hostname and a read-only bind mount reach the process",
        async () => {
          await Deno.writeTextFile(`${bindDir}/f`, "from-host\n", { mode: 0o644 });
          // The process runs as nobody: the temp dir's 0700 would hide the file.
          await Deno.chmod(bindDir, 0o755);
          const r = await e.b([
            "ctr",
            "run",
            "--rm",
            "--env",
            "A=1",
            "--cwd",
            "/tmp",
            "--user",
            "nobody",
            "--hostname",
            "box",
            "--mount",
            `type=bind,src=${bindDir},dst=/host,options=rbind:ro`,
            image,
            "c3",
            "sh",
            "-c",
            "echo $A; pwd; id -u; id -g; cat /proc/sys/kernel/hostname; cat /host/f; touch /host/g || echo ro",
          ]);
          assert.equal(r.code, 0, r.stderr);
          assert.equal(r.stdout, "1\n/tmp\n65534\n65534\nbox\nfrom-host\nro\n");
          assert.ok(!(await exists(`${bindDir}/g`)));
        },
      );

      await t.step("--read-only makes the rootfs unwritable", async () => {
        const r = await e.b(["ctr", "run", "--rm", "--read-only", image, "c4", "touch", "/x"]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /Read-only file system/);
      });

      await t.step(
        "run -d: tasks ls, exec, pause, resume, ps, metrics, kill, rm; containers ls, info, rm",
        async () => {
          const run = await e.b([
            "ctr",
            "run",
            "-d",
            "--memory-limit",
            String(32 << 20),
            image,
            "d1",
            "sleep",
            "1000",
          ]);
          assert.equal(run.code, 0, run.stderr);
          assert.equal(run.stdout, "");
          const ls = await e.b(["tasks", "ls"]);
          assert.match(ls.stdout, /^TASK\s+PID\s+STATUS\n/);
          assert.match(ls.stdout, /^d1\s+\d+\s+RUNNING$/m);
          const pid = Number(/^d1\s+(\d+)/m.exec(ls.stdout)![1]);

          const v1 = `/sys/fs/cgroup/memory/${e.ns}/d1/memory.limit_in_bytes`;
          const v2 = `/sys/fs/cgroup/${e.ns}/d1/memory.max`;
          const limit = await Deno.readTextFile(v1).catch(() => Deno.readTextFile(v2));
          assert.equal(limit.trim(), String(32 << 20));

          const exec = await e.b([
            "tasks",
            "exec",
            "--exec-id",
            "e1",
            "d1",
            "sh",
            "-c",
            "echo in-exec; exit 3",
          ]);
          assert.equal(exec.stdout, "in-exec\n");
          assert.equal(exec.code, 3);

          assert.equal((await e.b(["t", "pause", "d1"])).code, 0);
          assert.match((await e.b(["tasks", "ls"])).stdout, /^d1\s+\d+\s+PAUSED$/m);
          assert.equal((await e.b(["task", "resume", "d1"])).code, 0);
          assert.match((await e.b(["tasks", "ls"])).stdout, /^d1\s+\d+\s+RUNNING$/m);

          const ps = await e.b(["tasks", "ps", "d1"]);
          assert.match(ps.stdout, new RegExp(`^PID\\s+INFO\\n${pid}\\s`));
          const metrics = await e.b(["tasks", "metrics", "d1"]);
          assert.equal(metrics.code, 0, metrics.stderr);
          assert.match(metrics.stdout, /^ID\s+TIMESTAMP\nd1\s+\S+\n\nMETRIC\s+VALUE\n/);
          assert.match(metrics.stdout, /pids\.current\s+1\n/);
          assert.match(metrics.stdout, new RegExp(`memory\\.(limit_in_bytes|usage_limit)\\s+${32 << 20}\\n`));

          const cls = await e.b(["containers", "ls"]);
          assert.match(
            cls.stdout,
            new RegExp(`^d1\\s+${image.replace(/[.]/g, "\\.")}\\s+io\\.containerd\\.runc\\.v2$`, "m"),
          );
          const info = JSON.parse((await e.b(["c", "info", "d1"])).stdout);
          assert.equal(info.ID, "d1");
          assert.equal(info.SnapshotKey, "d1");
          assert.deepEqual(info.Spec.process.args, ["sleep", "1000"]);
          assert.equal(info.Spec.linux.cgroupsPath, `/${e.ns}/d1`);

          const busy = await e.b(["c", "rm", "d1"]);
          assert.equal(busy.code, 1);
          assert.match(busy.stderr, /non stopped container.*RUNNING/);

          assert.equal((await e.b(["tasks", "kill", "-s", "SIGKILL", "d1"])).code, 0);
          await waitFor(
            "d1 to stop",
            async () => /^d1\s+\d+\s+STOPPED$/m.test((await e.b(["tasks", "ls"])).stdout),
          );
          assert.equal((await e.b(["tasks", "rm", "d1"])).code, 0);
          assert.equal((await e.b(["c", "rm", "d1"])).code, 0);
          assert.equal((await e.b(["c", "ls", "-q"])).stdout, "");
          assert.ok(!(await snapshotKeys(e)).includes("d1"), "the snapshot went with the container");
          assert.ok(!(await exists(`/sys/fs/cgroup/memory/${e.ns}/d1`)));
        },
      );

      await t.step("containers create, label, then tasks start runs it to its exit status", async () => {
        assert.equal((await e.b(["c", "create", image, "k1", "sh", "-c", "echo started; exit 4"])).code, 0);
        const label = await e.b(["c", "label", "k1", "team=blue"]);
        assert.match(label.stdout, /team=blue/);
        const start = await e.b(["tasks", "start", "k1"]);
        assert.equal(start.code, 4, start.stderr);
        assert.equal(start.stdout, "started\n");
        assert.equal((await e.b(["c", "rm", "k1"])).code, 0);
      });

      await t.step("run -t through a pty echoes input", async () => {
        const inner = [Deno.execPath(), "run", "-A", "--quiet", mainTs, "--address", e.daemon.address];
        const cmd = [...inner, "--namespace", e.ns, "ctr", "run", "--rm", "-t", image, "tty1", "sh"].join(
          " ",
        );
        const child = new Deno.Command("script", {
          args: ["-qec", cmd, "/dev/null"],
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const writer = child.stdin.getWriter();
        const out = child.output();
        try {
          await waitFor(
            "the tty task",
            async () => /^tty1\s/m.test((await e.b(["tasks", "ls"])).stdout),
            15000,
          );
          await writer.write(new TextEncoder().encode("echo tty-$((40+2))\n"));
          await new Promise((r) => setTimeout(r, 500));
          await writer.write(new TextEncoder().encode("exit 5\n"));
          await writer.close();
          const r = await out;
          const text = new TextDecoder().decode(r.stdout);
          assert.match(text, /tty-42/);
          assert.equal(r.code, 5, text + new TextDecoder().decode(r.stderr));
        } finally {
          try {
            child.kill("SIGKILL");
          } catch { /* exited */ }
          await out.catch(() => {});
        }
      });

      await t.step(
        "a task's stdin ends when the CLI's does: /dev/null without a FIFO or CloseIO, a pipe with them",
        async () => {
          const script = "cat; echo read-done";
          const from = e.daemon.logs().length;
          const quiet = await e.b(["ctr", "run", "--rm", image, "in1", "sh", "-c", script]);
          assert.equal(quiet.code, 0, quiet.stderr);
          assert.equal(quiet.stdout, "read-done\n");
          const calls = await callsSince(e.daemon, from, "berth.run.v1.Run/Run");
          await new Promise((r) => setTimeout(r, 200));
          assert.doesNotMatch(e.daemon.logs().slice(from), /Tasks\/CloseIO/, calls.join(" "));

          const child = berthCommand(
            [
              "--address",
              e.daemon.address,
              "--namespace",
              e.ns,
              "ctr",
              "run",
              "--rm",
              image,
              "in2",
              "sh",
              "-c",
              script,
            ],
            { stdin: "piped" },
          ).spawn();
          const writer = child.stdin.getWriter();
          await writer.write(new TextEncoder().encode("typed\n"));
          await writer.close();
          const piped = await child.output();
          assert.equal(piped.code, 0, new TextDecoder().decode(piped.stderr));
          assert.equal(new TextDecoder().decode(piped.stdout), "typed\nread-done\n");
        },
      );

      await t.step(
        "a missing image in an unreachable registry fails clearly and leaves no container",
        async () => {
          const r = await e.b([
            "ctr",
            "run",
            "--rm",
            "--plain-http",
            "127.0.0.1:1/berth/absent:v1",
            "b1",
            "true",
          ]);
          assert.equal(r.code, 1);
          assert.match(
            r.stderr,
            /Image "127\.0\.0\.1:1\/berth\/absent:v1" is not present and cannot be pulled/,
          );
          assert.equal((await e.b(["c", "ls", "-q"])).stdout, "");
        },
      );

      await t.step("a duplicate id fails clearly and the first container keeps running", async () => {
        assert.equal((await e.b(["ctr", "run", "-d", image, "b2", "sleep", "1000"])).code, 0);
        const dup = await e.b(["ctr", "run", "--rm", image, "b2", "true"]);
        assert.equal(dup.code, 1);
        assert.match(dup.stderr, /already exists/);
        assert.match((await e.b(["tasks", "ls"])).stdout, /^b2\s+\d+\s+RUNNING$/m);
        assert.equal((await e.b(["tasks", "rm", "-f", "b2"])).code, 0);
        assert.equal((await e.b(["c", "rm", "b2"])).code, 0);
      });

      await t.step(
        "a command not in the image fails clearly and leaves no container or snapshot",
        async () => {
          const r = await e.b(["ctr", "run", image, "b3", "/bin/nonexistent"]);
          assert.equal(r.code, 1);
          assert.match(r.stderr, /\/bin\/nonexistent.*no such file or directory/);
          assert.equal((await e.b(["c", "ls", "-q"])).stdout, "");
          assert.ok(!(await snapshotKeys(e)).includes("b3"));
        },
      );

      await t.step("bad flags and ids fail as the long way fails them, leaving nothing", async () => {
        const bad = await e.b(["ctr", "run", "--rm", image, "b..4", "true"]);
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /b\.\.4/);
        const limit = await e.b(["ctr", "run", "--rm", "--memory-limit", "lots", image, "b5", "true"]);
        assert.equal(limit.code, 1);
        assert.match(limit.stderr, /Invalid --memory-limit "lots": expected a non-negative number/);
        const cap = await e.b(["ctr", "run", "--rm", "--cap-add", "NET_ADMIN", image, "b6", "true"]);
        assert.match(cap.stderr, /Invalid capability "NET_ADMIN": use the CAP_ prefix/);
        assert.equal((await e.b(["c", "ls", "-q"])).stdout, "");
        const keys = await snapshotKeys(e);
        assert.ok(!["b..4", "b5", "b6"].some((k) => keys.includes(k)), keys.join(" "));
      });
    } finally {
      if (env) await cleanup(env).catch(() => {});
      await daemon?.stop();
      if (daemon) await Deno.remove(daemon.dir, { recursive: true }).catch(() => {});
      await registry.stop();
      await Deno.remove(bindDir, { recursive: true }).catch(() => {});
      if (env) await removeNamespaceCgroups(env.ns);
    }
  },
});

Deno.test({
  name: "berth run works the same with containerd's runc shim as io.containerd.runc.v2",
  ignore: !hasShim,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const registry = await startRegistry();
    let daemon: TestDaemon | undefined;
    let env: Env | undefined;
    try {
      const image = await pushedImage(registry);
      daemon = await startDaemon({ config: shimConfig });
      env = envFor(daemon);
      const r = await env.b([
        "ctr",
        "run",
        "--rm",
        "--plain-http",
        image,
        "r1",
        "sh",
        "-c",
        "echo via-runc-shim; exit 6",
      ]);
      assert.equal(r.code, 6, r.stderr);
      assert.equal(r.stdout, "via-runc-shim\n");
      assert.equal((await env.b(["c", "ls", "-q"])).stdout, "");
    } finally {
      if (env) await cleanup(env).catch(() => {});
      await daemon?.stop();
      if (daemon) await Deno.remove(daemon.dir, { recursive: true }).catch(() => {});
      await registry.stop();
      await Deno.remove(`/run/containerd/runc/${env?.ns}`, { recursive: true }).catch(() => {});
      if (env) await removeNamespaceCgroups(env.ns);
    }
  },
});

Deno.test({
  name: "berth ctr run on containerd itself (no Run service) takes ctr's long way, rootfs included",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const registry = await startRegistry();
    const dir = await Deno.makeTempDir({ prefix: "berth-on-containerd-" });
    let runtime: CriRuntime | undefined;
    let env: Env | undefined;
    try {
      const image = await pushedImage(registry);
      runtime = await startCriRuntime("containerd", { dir, plugin: "" });
      const address = runtime.address;
      const ns = `bc${crypto.randomUUID().slice(0, 8)}`;
      env = {
        daemon: undefined as unknown as TestDaemon,
        ns,
        b: (args) => berth(["--address", address, "--namespace", ns, ...args]),
      };
      // Berth's CLI pulls through its daemon's Transfer service, which containerd lacks: Debian's ctr pulls.
      const pull = await new Deno.Command("ctr", {
        args: ["-a", address, "-n", ns, "images", "pull", "--plain-http", image],
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.ok(pull.success, new TextDecoder().decode(pull.stderr));
      // The Run call is answered Unimplemented: the long way runs it, the snapshot's mounts as its rootfs.
      const r = await env.b([
        "ctr",
        "run",
        "--rm",
        image,
        "k1",
        "sh",
        "-c",
        "echo via-containerd; exit 5",
      ]);
      assert.equal(r.code, 5, r.stderr);
      assert.equal(r.stdout, "via-containerd\n");
      const again = await env.b(["ctr", "run", "--rm", image, "k2", "sh", "-c", "exit 3"]);
      assert.equal(again.code, 3, again.stderr);
      assert.equal((await env.b(["c", "ls", "-q"])).stdout, "");
    } finally {
      if (env) await cleanup(env).catch(() => {});
      await runtime?.stop();
      await registry.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.remove(`/run/containerd/runc/${env?.ns}`, { recursive: true }).catch(() => {});
      if (env) await removeNamespaceCgroups(env.ns);
    }
  },
});
