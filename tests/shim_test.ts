/**
 * Berth's shim driven by a real containerd 1.6 (Debian's) through Debian's `ctr`: the shim binary is
 * `containerd-shim-berth-v2` on containerd's PATH, a wrapper that runs `berth shim`. Everything runs on
 * private folders and a private namespace, and every container, shim, mount and cgroup is removed again.
 */

import assert from "node:assert/strict";
import { buildFixtureImages } from "./fixtures/images.ts";
import { processesWith } from "./helpers/procs.ts";

const CONTAINERD = "/usr/bin/containerd";
const CTR = "/usr/bin/ctr";
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const RUNTIME = "io.containerd.berth.v2";
const IMAGE = "berth.test/fixture:single";

const available = await Deno.stat(CONTAINERD).then(() => true, () => false) &&
  await Deno.stat(CTR).then(() => true, () => false);

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface Env {
  readonly dir: string;
  readonly socket: string;
  readonly namespace: string;
  readonly binDir: string;
  readonly daemon: Deno.ChildProcess;
}

interface Out {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function ctr(env: Env, args: string[], options: { timeoutMs?: number } = {}): Promise<Out> {
  const out = await new Deno.Command(CTR, {
    args: ["--address", env.socket, "--namespace", env.namespace, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function ok(env: Env, args: string[]): Promise<string> {
  const out = await ctr(env, args);
  assert.equal(out.code, 0, `ctr ${args.join(" ")} failed: ${out.stderr}`);
  return out.stdout;
}

function shimPids(env: Env): number[] {
  return processesWith("shim", "-address", env.socket, "-socket");
}

function smaps(pid: number): { rss: number; pss: number } {
  const text = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
  const kb = (k: string) => Number(text.match(new RegExp(`^${k}:\\s+(\\d+) kB`, "m"))?.[1] ?? 0);
  return { rss: kb("Rss"), pss: kb("Pss") };
}

async function startContainerd(): Promise<Env> {
  const dir = await Deno.makeTempDir({ prefix: "berth-shim-test-" });
  const binDir = `${dir}/bin`;
  await Deno.mkdir(binDir);
  // A private copy of deno: the shim must not share its pages with the test runner, or its PSS would lie.
  await Deno.copyFile(Deno.execPath(), `${binDir}/deno`);
  await Deno.chmod(`${binDir}/deno`, 0o755);
  await Deno.writeTextFile(
    `${binDir}/containerd-shim-berth-v2`,
    `#!/bin/sh\nexec ${binDir}/deno run -q -A ${MAIN} shim "$@"\n`,
  );
  await Deno.chmod(`${binDir}/containerd-shim-berth-v2`, 0o755);
  const socket = `${dir}/containerd.sock`;
  await Deno.writeTextFile(
    `${dir}/config.toml`,
    [
      "version = 2",
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      "[grpc]",
      `  address = "${socket}"`,
      "[ttrpc]",
      `  address = "${socket}.ttrpc"`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${dir}/opt"`,
      '[plugins."io.containerd.grpc.v1.cri"]',
      "  disable_tcp_service = true",
      "",
    ].join("\n"),
  );
  const log = await Deno.open(`${dir}/containerd.log`, { write: true, create: true });
  const daemon = new Deno.Command(CONTAINERD, {
    args: ["--config", `${dir}/config.toml`],
    // BERTH_SHIM_IDLE_MS=0: an idle shim exits at once, so the test can see it go.
    env: {
      PATH: `${binDir}:${Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`,
      BERTH_SHIM_IDLE_MS: "0",
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  daemon.stderr.pipeTo(log.writable).catch(() => {});
  const env: Env = { dir, socket, namespace: `berthshim${crypto.randomUUID().slice(0, 6)}`, binDir, daemon };
  for (let i = 0; i < 100; i++) {
    if ((await ctr(env, ["version"], { timeoutMs: 2_000 }).catch(() => undefined))?.code === 0) return env;
    await sleep(100);
  }
  await stopContainerd(env, []);
  throw new Error("containerd did not come up");
}

function mountsUnder(dir: string): string[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m.startsWith(dir))
    .sort((a, b) => b.length - a.length);
}

async function stopContainerd(env: Env, ids: readonly string[]): Promise<void> {
  for (const id of ids) {
    await ctr(env, ["task", "kill", "-s", "SIGKILL", id], { timeoutMs: 5_000 }).catch(() => {});
    await ctr(env, ["task", "rm", "-f", id], { timeoutMs: 10_000 }).catch(() => {});
    await ctr(env, ["c", "rm", id], { timeoutMs: 5_000 }).catch(() => {});
  }
  for (const pid of shimPids(env)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  try {
    env.daemon.kill("SIGKILL");
  } catch { /* exited */ }
  await env.daemon.status;
  // Anything a failed step left: runtime containers, mounts, cgroups.
  for (const id of ids) {
    await new Deno.Command("runc", {
      args: ["--root", `/run/berth/runc/${env.namespace}`, "delete", "--force", id],
      stdout: "null",
      stderr: "null",
    }).output().catch(() => {});
  }
  for (const root of [`/run/berth/runc/${env.namespace}`, `/run/containerd/runc/${env.namespace}`]) {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
  for (const m of mountsUnder(env.dir)) {
    await new Deno.Command("umount", { args: ["-l", m], stdout: "null", stderr: "null" }).output();
  }
  for (const ctl of [...Deno.readDirSync("/sys/fs/cgroup")].map((e) => e.name)) {
    const base = `/sys/fs/cgroup/${ctl}/${env.namespace}`;
    for (const id of ids) await Deno.remove(`${base}/${id}`).catch(() => {});
    await Deno.remove(base).catch(() => {});
  }
  if (mountsUnder(env.dir).length === 0) await Deno.remove(env.dir, { recursive: true });
}

async function importFixtures(env: Env): Promise<void> {
  const layout = `${env.dir}/layout`;
  await buildFixtureImages(layout);
  const tar = await new Deno.Command("tar", { args: ["-C", layout, "-cf", `${env.dir}/images.tar`, "."] })
    .output();
  assert.ok(tar.success);
  await ok(env, ["images", "import", "--base-name", "berth.test/fixture", `${env.dir}/images.tar`]);
}

async function taskStatus(env: Env, id: string): Promise<string | undefined> {
  const out = await ok(env, ["task", "ls"]);
  const line = out.split("\n").find((l) => l.split(/\s+/)[0] === id);
  return line?.split(/\s+/)[2];
}

Deno.test({
  name: "Berth's shim runs containers for a real containerd 1.6 driven by ctr",
  ignore: !available,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const env = await startContainerd();
    const ids: string[] = [];
    const run = (id: string, args: string[]) => {
      ids.push(id);
      return ctr(env, ["run", "--runtime", RUNTIME, ...args]);
    };
    try {
      await importFixtures(env);

      await t.step("ctr run --rm prints what /bin/echo wrote", async () => {
        const out = await run("echo1", ["--rm", IMAGE, "echo1", "/bin/echo", "hi"]);
        assert.equal(out.code, 0, out.stderr);
        assert.equal(out.stdout, "hi\n");
      });

      await t.step("ctr run reports the container's exit code", async () => {
        const out = await run("exit7", ["--rm", IMAGE, "exit7", "sh", "-c", "exit 7"]);
        assert.equal(out.code, 7, out.stderr);
      });

      await t.step(
        "a detached task runs, execs, pauses, resumes, lists pids and metrics, dies by SIGKILL",
        async () => {
          const out = await run("d1", ["-d", IMAGE, "d1", "sleep", "1000"]);
          assert.equal(out.code, 0, out.stderr);
          assert.equal(await taskStatus(env, "d1"), "RUNNING");

          const exec = await ctr(env, ["task", "exec", "--exec-id", "e1", "d1", "/bin/echo", "x"]);
          assert.equal(exec.code, 0, exec.stderr);
          assert.equal(exec.stdout, "x\n");
          const failing = await ctr(env, [
            "task",
            "exec",
            "--exec-id",
            "e2",
            "d1",
            "sh",
            "-c",
            "echo err >&2; exit 3",
          ]);
          assert.equal(failing.code, 3);
          assert.equal(failing.stderr.split("\n")[0], "err");

          await ok(env, ["task", "pause", "d1"]);
          assert.equal(await taskStatus(env, "d1"), "PAUSED");
          await ok(env, ["task", "resume", "d1"]);
          assert.equal(await taskStatus(env, "d1"), "RUNNING");

          const ps = await ok(env, ["task", "ps", "d1"]);
          const pid = (await ok(env, ["task", "ls"])).split("\n").find((l) =>
            l.startsWith("d1")
          )!.split(/\s+/)[1];
          assert.match(ps, new RegExp(`^${pid}\\s`, "m"));

          const metrics = await ok(env, ["task", "metrics", "d1"]);
          assert.match(metrics, /memory\.usage_in_bytes\s+[1-9]\d*/);
          assert.match(metrics, /pids\.current\s+1\b/);

          await ok(env, ["task", "kill", "-s", "SIGKILL", "d1"]);
          for (let i = 0; i < 50 && (await taskStatus(env, "d1")) !== "STOPPED"; i++) await sleep(100);
          assert.equal(await taskStatus(env, "d1"), "STOPPED");
          await ok(env, ["task", "rm", "d1"]);
          await ok(env, ["c", "rm", "d1"]);
          assert.equal(await taskStatus(env, "d1"), undefined);
          const bundle = `${env.dir}/state/io.containerd.runtime.v2.task/${env.namespace}/d1`;
          assert.equal(await Deno.stat(bundle).then(() => true, () => false), false, "bundle left behind");
          assert.deepEqual(mountsUnder(bundle), []);
        },
      );

      await t.step("events of a task reach containerd through Events.Forward", async () => {
        const events = new Deno.Command(CTR, {
          args: ["--address", env.socket, "events"],
          stdout: "piped",
          stderr: "null",
        }).spawn();
        try {
          await sleep(300);
          const out = await run("ev1", ["--rm", IMAGE, "ev1", "/bin/true"]);
          assert.equal(out.code, 0, out.stderr);
          await sleep(500);
        } finally {
          events.kill("SIGKILL");
        }
        const text = new TextDecoder().decode((await events.output()).stdout);
        for (const topic of ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]) {
          assert.match(text, new RegExp(`${env.namespace} ${topic} `), `no ${topic} event in:\n${text}`);
        }
      });

      await t.step(
        "a container over its memory limit is OOM-killed and a /tasks/oom event is published",
        async () => {
          const events = new Deno.Command(CTR, {
            args: ["--address", env.socket, "events"],
            stdout: "piped",
            stderr: "null",
          }).spawn();
          let out: Out;
          try {
            await sleep(300);
            out = await run("oom1", [
              "--rm",
              "--memory-limit",
              String(16 * 1024 * 1024),
              IMAGE,
              "oom1",
              "sh",
              "-c",
              "busybox head -c 200000000 /dev/zero | busybox tail -c 100000000 > /dev/null",
            ]);
            await sleep(500);
          } finally {
            events.kill("SIGKILL");
          }
          const text = new TextDecoder().decode((await events.output()).stdout);
          assert.notEqual(out.code, 0, "the container should have been killed");
          assert.match(text, new RegExp(`${env.namespace} /tasks/oom `), `no /tasks/oom event in:\n${text}`);
        },
      );

      await t.step(
        "a terminal session through script(1) echoes input and has the client's size",
        async () => {
          ids.push("tty1");
          const cmd = `stty cols 91 rows 37; ${CTR} --address ${env.socket} --namespace ${env.namespace} ` +
            `run -t --rm --runtime ${RUNTIME} ${IMAGE} tty1 sh`;
          const child = new Deno.Command("script", {
            args: ["-qec", cmd, "/dev/null"],
            stdin: "piped",
            stdout: "piped",
            stderr: "piped",
            signal: AbortSignal.timeout(30_000),
          }).spawn();
          const w = child.stdin.getWriter();
          const enc = new TextEncoder();
          await sleep(2_000);
          await w.write(enc.encode("echo sum-$((6*7))\n"));
          await sleep(500);
          await w.write(enc.encode("busybox stty size\n"));
          await sleep(500);
          await w.write(enc.encode("exit 5\n"));
          await w.close();
          const out = await child.output();
          const text = new TextDecoder().decode(out.stdout);
          assert.match(text, /echo sum-\$\(\(6\*7\)\)/, `input not echoed:\n${text}`);
          assert.match(text, /sum-42/);
          assert.match(text, /37 91/);
          assert.equal(out.code, 5, text);
        },
      );

      await t.step(
        "containers of one namespace share one shim; memory with 1 and 10 containers",
        async () => {
          assert.deepEqual(shimPids(env), [], "a shim outlived its last container");
          const out = await run("s0", ["-d", IMAGE, "s0", "sleep", "1000"]);
          assert.equal(out.code, 0, out.stderr);
          const [shim, ...more] = shimPids(env);
          assert.ok(shim !== undefined && more.length === 0, `shims: ${shimPids(env)}`);
          await sleep(500);
          const one = smaps(shim);
          for (let i = 1; i < 10; i++) {
            const o = await run(`s${i}`, ["-d", IMAGE, `s${i}`, "sleep", "1000"]);
            assert.equal(o.code, 0, o.stderr);
          }
          assert.deepEqual(shimPids(env), [shim], "ten containers must share one shim");
          await sleep(500);
          const ten = smaps(shim);
          let runcShim: { rss: number; pss: number } | undefined;
          if (await Deno.stat("/usr/bin/containerd-shim-runc-v2").then(() => true, () => false)) {
            const r = await run("r0", [
              "-d",
              "--runtime",
              "io.containerd.runc.v2",
              IMAGE,
              "r0",
              "sleep",
              "1000",
            ]);
            assert.equal(r.code, 0, r.stderr);
            const [p] = processesWith("containerd-shim-runc-v2", "-address", env.socket);
            if (p) runcShim = smaps(p);
          }
          console.log(
            `berth shim: 1 container RSS ${one.rss} kB PSS ${one.pss} kB; 10 containers RSS ${ten.rss} kB ` +
              `PSS ${ten.pss} kB (${((ten.pss - one.pss) / 9).toFixed(0)} kB PSS per added container)` +
              (runcShim
                ? `; containerd-shim-runc-v2 (1 container) RSS ${runcShim.rss} kB PSS ${runcShim.pss} kB`
                : ""),
          );
          for (const id of ["r0", ...Array.from({ length: 10 }, (_, i) => `s${i}`)]) {
            await ctr(env, ["task", "kill", "-s", "SIGKILL", id]);
          }
          for (const id of ["r0", ...Array.from({ length: 10 }, (_, i) => `s${i}`)]) {
            for (let i = 0; i < 50 && (await taskStatus(env, id)) === "RUNNING"; i++) await sleep(100);
            await ok(env, ["task", "rm", id]);
            await ok(env, ["c", "rm", id]);
          }
          for (let i = 0; i < 50 && shimPids(env).length > 0; i++) await sleep(100);
          assert.deepEqual(shimPids(env), [], "the shared shim must exit after its last container");
        },
      );
    } finally {
      await stopContainerd(env, ids);
    }
  },
});
