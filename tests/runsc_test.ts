/**
 * gVisor through Berth: Debian's `runsc` as the OCI runtime of Berth's shim, chosen by ctr's
 * `--runc-binary` or by a configured runtime (`[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.NAME]`
 * with `options.BinaryName`) that `ctr run --runtime NAME` names. A gVisor container sees gVisor's own
 * kernel (`uname -r` → 4.4.0), a runc container the host's.
 */
import assert from "node:assert/strict";
import { type Env, leftovers, setup, teardown } from "./helpers/tasks.ts";

const RUNSC = ["/usr/bin/runsc", "/usr/local/bin/runsc", "/usr/sbin/runsc"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});
if (!RUNSC) console.warn("runsc_test.ts: skipped, runsc (Debian's gVisor package) is not installed");

/** gVisor's emulated kernel release, the same on every host. */
const GVISOR_KERNEL = "4.4.0";

const runtimes = `
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.gvisor]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.gvisor.options]
    BinaryName = "runsc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.gone]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.gone.options]
    BinaryName = "/nonexistent/runsc"
`;

/** runsc keeps its state (and a sandbox, should one survive) in the shim's --root for the namespace. */
async function removeRunscState(env: Env): Promise<void> {
  const root = `/run/berth/runc/${env.ns}`;
  const list = await new Deno.Command(RUNSC!, { args: ["--root", root, "list", "-quiet"], stderr: "null" })
    .output().catch(() => undefined);
  for (const id of new TextDecoder().decode(list?.stdout ?? new Uint8Array()).split("\n").filter(Boolean)) {
    await new Deno.Command(RUNSC!, { args: ["--root", root, "delete", "-force", id], stderr: "null" })
      .output().catch(() => {});
  }
  await Deno.remove(root, { recursive: true }).catch(() => {});
}

/** What runsc still holds for the namespace: containers in its --root, and sandbox or gofer processes. */
async function runscLeftovers(env: Env): Promise<string[]> {
  const root = `/run/berth/runc/${env.ns}`;
  const out = await new Deno.Command(RUNSC!, { args: ["--root", root, "list", "-quiet"], stderr: "null" })
    .output();
  const left = new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map((id) =>
    `container ${id}`
  );
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
    if (cmdline.includes(`--root=${root}\0`)) left.push(`process ${e.name}: ${cmdline.split("\0")[0]}`);
  }
  return left;
}

/**
 * Polls `check` until it finds nothing left, for up to 5 s: the shim deletes an exited container in the
 * background (see src/shim/runc_fast.ts), and `runsc delete` tears a sandbox and its cgroups down after
 * ctr has its answer.
 */
async function settled(check: () => Promise<string[]>): Promise<string[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const left = await check();
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function unameIn(env: Env, id: string, args: string[]): Promise<string> {
  const r = await env.ctr(["run", "--rm", ...args, env.image, id, "busybox", "uname", "-r"], {
    timeoutMs: 60_000,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await settled(() => leftovers(env, id)), []);
  assert.deepEqual(await settled(() => runscLeftovers(env)), []);
  return r.stdout.trim();
}

Deno.test({
  name:
    "runsc runs containers through Berth's shim: gVisor's kernel by --runc-binary and by a configured runtime",
  ignore: !RUNSC,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const env = await setup(undefined, "berth", {}, { extraConfig: runtimes });
    const wrapperDir = await Deno.makeTempDir({ prefix: "berth-runsc-" });
    try {
      await t.step("a runc container sees the host's kernel", async () => {
        assert.equal(await unameIn(env, "host", []), Deno.osRelease());
      });

      await t.step("--runc-binary runsc sees gVisor's kernel", async () => {
        assert.equal(await unameIn(env, "g1", ["--runc-binary", "runsc"]), GVISOR_KERNEL);
      });

      await t.step("--runc-binary runsc with the host's network sees gVisor's kernel", async () => {
        assert.equal(await unameIn(env, "g2", ["--runc-binary", RUNSC!, "--net-host"]), GVISOR_KERNEL);
      });

      await t.step("--runc-binary takes a wrapper script that gives runsc its own flags", async () => {
        const wrapper = `${wrapperDir}/gvisor`;
        await Deno.writeTextFile(wrapper, `#!/bin/sh\nexec ${RUNSC} --network=none "$@"\n`, { mode: 0o755 });
        assert.equal(await unameIn(env, "g3", ["--runc-binary", wrapper]), GVISOR_KERNEL);
      });

      await t.step("--runtime names a configured runtime whose BinaryName is runsc", async () => {
        assert.equal(await unameIn(env, "g4", ["--runtime", "gvisor"]), GVISOR_KERNEL);
      });

      await t.step(
        "a start that runsc refuses leaves no sandbox once the task is killed and removed",
        async () => {
          const r = await env.ctr(["run", "--rm", "--runc-binary", "runsc", env.image, "f1", "nosuchcmd"], {
            timeoutMs: 60_000,
          });
          assert.notEqual(r.code, 0);
          assert.match(r.stderr, /error finding executable "nosuchcmd"/);
          // runsc cannot signal a container before its start; the shim kills its sandbox instead.
          const kill = await env.ctr(["task", "kill", "-s", "SIGKILL", "f1"]);
          assert.equal(kill.code, 0, kill.stderr);
          const rm = await env.ctr(["task", "rm", "f1"]);
          assert.equal(rm.code, 0, rm.stderr);
          assert.equal((await env.ctr(["c", "rm", "f1"])).code, 0);
          assert.deepEqual(await settled(() => leftovers(env, "f1")), []);
          assert.deepEqual(await settled(() => runscLeftovers(env)), []);
        },
      );

      await t.step("a configured runtime whose binary is missing fails in Go's os/exec wording", async () => {
        const r = await env.ctr(["run", "--rm", "--runtime", "gone", env.image, "g5", "true"]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /fork\/exec \/nonexistent\/runsc: no such file or directory/);
        await env.ctr(["c", "rm", "g5"]);
        assert.deepEqual(await leftovers(env, "g5"), []);
      });

      await t.step(
        "io.containerd.runsc.v1 without gVisor's shim installed is containerd's missing binary",
        async () => {
          const r = await env.ctr([
            "run",
            "--rm",
            "--runtime",
            "io.containerd.runsc.v1",
            env.image,
            "g7",
            "true",
          ]);
          assert.notEqual(r.code, 0);
          assert.match(
            r.stderr,
            /runtime "io\.containerd\.runsc\.v1" binary not installed "containerd-shim-runsc-v1": file does not exist/,
          );
          await env.ctr(["c", "rm", "g7"]);
        },
      );

      await t.step(
        "a runtime name neither configured nor a shim name is containerd's invalid name",
        async () => {
          const r = await env.ctr(["run", "--rm", "--runtime", "nosuch", env.image, "g6", "true"]);
          assert.notEqual(r.code, 0);
          assert.match(
            r.stderr,
            /invalid runtime name nosuch, correct runtime name should be either format like `io\.containerd\.runc\.v1` or a full path to the binary/,
          );
          await env.ctr(["c", "rm", "g6"]);
        },
      );
    } finally {
      await teardown(env);
      await removeRunscState(env);
      await Deno.remove(wrapperDir, { recursive: true });
    }
  },
});
