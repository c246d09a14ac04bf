import assert from "node:assert/strict";
import { checkpointArgs, errorMessages, kindOfMessage, restoreArgs, Runc, RuncError } from "./runc.ts";
import { pidAlive, withContainer } from "./testing.ts";

/**
 * Whether the runtime can run a container on this host at all: crun 1.8 refuses hosts with cgroup v1
 * controllers next to a populated cgroup v2 mount ("hybrid mode"), where runc works.
 */
async function runtimeWorks(binary: string): Promise<boolean> {
  try {
    await withContainer(binary, async ({ runc, bundle, id }) => {
      await runc.create(id, { bundle });
    });
    return true;
  } catch (err) {
    console.warn(`Skipping ${binary} container tests on this host: ${(err as Error).message}`);
    return false;
  }
}

for (const binary of ["runc", "crun"]) {
  const ignore = !(await runtimeWorks(binary));
  Deno.test({
    name: `Runc(${binary}).start() of a missing container fails as not found`,
    async fn() {
      await withContainer(binary, async ({ runc }) => {
        const err = await runc.start("no-such-container").then(() => undefined, (e) => e);
        assert.ok(err instanceof RuncError);
        assert.equal(err.kind, "not_found");
        assert.notEqual(err.exitCode, 0);
      });
    },
  });

  Deno.test({
    name: `Runc(${binary}) creates, starts, pauses, resumes, kills and deletes a busybox container`,
    ignore,
    async fn() {
      await withContainer(binary, async ({ runc, dir, bundle, id }) => {
        await runc.create(id, { bundle, pidFile: `${dir}/init.pid` });
        const pid = Number(await Deno.readTextFile(`${dir}/init.pid`));
        assert.ok(pid > 0);
        let st = await runc.state(id);
        assert.equal(st.status, "created");
        assert.equal(st.pid, pid);
        assert.equal(st.id, id);

        await runc.start(id);
        st = await runc.state(id);
        assert.equal(st.status, "running");
        assert.deepEqual(await runc.ps(id), [pid]);
        assert.ok((await runc.list()).some((c) => c.id === id));

        await runc.pause(id);
        assert.equal((await runc.state(id)).status, "paused");
        await runc.resume(id);
        assert.equal((await runc.state(id)).status, "running");

        await runc.kill(id, "SIGKILL");
        for (let i = 0; i < 100 && (await runc.state(id)).status !== "stopped"; i++) {
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal((await runc.state(id)).status, "stopped");
        await runc.delete(id);
        const gone = await runc.state(id).then(() => undefined, (e) => e);
        assert.ok(gone instanceof RuncError);
        assert.equal(gone.kind, "not_found");
        assert.match(gone.message, new RegExp(`^${binary} state ${id} failed: `));
        assert.equal(await pidAlive(pid), false);
      });
    },
  });

  Deno.test({
    name: `Runc(${binary}).create() of an existing id fails with the runtime's message`,
    ignore,
    async fn() {
      await withContainer(binary, async ({ runc, bundle, id }) => {
        await runc.create(id, { bundle });
        const err = await runc.create(id, { bundle }).then(() => undefined, (e) => e);
        assert.ok(err instanceof RuncError);
        assert.equal(err.kind, "already_exists");
        assert.match(err.message, new RegExp(`^${binary} create ${id} failed: .*already exists`));
      });
    },
  });

  Deno.test({
    name: `Runc(${binary}).exec() runs a detached process and hands its stdout to the caller`,
    ignore,
    async fn() {
      await withContainer(binary, async ({ runc, dir, bundle, id }) => {
        await runc.create(id, { bundle });
        await runc.start(id);
        const exec = await runc.exec(id, {
          process: {
            args: ["/bin/busybox", "sh", "-c", "echo hello-from-exec"],
            cwd: "/",
            env: ["PATH=/bin"],
            user: { uid: 0, gid: 0 },
          },
          pidFile: `${dir}/exec.pid`,
          stdio: "piped",
        });
        assert.equal(await exec.exited, 0);
        const out = await new Response(exec.stdout).text();
        await exec.stdin?.close().catch(() => {});
        await exec.stderr?.cancel();
        assert.equal(out.trim(), "hello-from-exec");
        assert.ok(Number(await Deno.readTextFile(`${dir}/exec.pid`)) > 0);
      });
    },
  });
}

Deno.test("Runc.stats() and update() read and change a running container's cgroup", async () => {
  await withContainer("runc", async ({ runc, bundle, id }) => {
    await runc.create(id, { bundle });
    await runc.start(id);
    const stats = await runc.stats(id);
    assert.equal(typeof stats.cpu?.usage?.total, "number");
    assert.ok((stats.pids?.current ?? 0) >= 1);
    await runc.update(id, { pids: { limit: 77 } });
    const after = await runc.stats(id);
    assert.equal(after.pids?.limit, 77);
  });
});

Deno.test("Runc command past its deadline fails with deadline_exceeded", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-runc-slow-" });
  try {
    // A stand-in runtime that hangs, to hit the deadline deterministically.
    const fake = `${dir}/slow-runtime`;
    await Deno.writeTextFile(fake, "#!/bin/sh\nexec sleep 30\n");
    await Deno.chmod(fake, 0o755);
    const runc = new Runc({ binary: fake, timeoutMs: 200 });
    const started = performance.now();
    const err = await runc.state("x").then(() => undefined, (e) => e);
    assert.ok(err instanceof RuncError);
    assert.equal(err.kind, "deadline_exceeded");
    assert.ok(performance.now() - started < 5000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Runc with a missing binary fails as not found, in Go's os/exec wording", async () => {
  const err = await new Runc({ binary: "/nonexistent/runc" }).state("x").then(() => undefined, (e) => e);
  assert.ok(err instanceof RuncError);
  assert.equal(err.kind, "not_found");
  assert.match(err.message, /fork\/exec \/nonexistent\/runc: no such file or directory/);
  const bare = await new Runc({ binary: "runc-not-installed" }).state("x").then(() => undefined, (e) => e);
  assert.match((bare as Error).message, /exec: "runc-not-installed": executable file not found in \$PATH/);
});

Deno.test("kindOfMessage() classifies runc and crun wording", () => {
  assert.equal(kindOfMessage("container does not exist"), "not_found");
  assert.equal(kindOfMessage("container with id exists: c1"), "internal");
  assert.equal(kindOfMessage("container with given ID already exists"), "already_exists");
  assert.equal(
    kindOfMessage("cannot delete container c1 that is not stopped: running"),
    "failed_precondition",
  );
  assert.equal(kindOfMessage("container not running"), "failed_precondition");
});

Deno.test("checkpointArgs() and restoreArgs() build runc's CRIU flags as containerd's go-runc does", () => {
  assert.deepEqual(checkpointArgs("c1", { imagePath: "/img" }), [
    "checkpoint",
    "--image-path",
    "/img",
    "--leave-running",
    "c1",
  ]);
  assert.deepEqual(
    checkpointArgs("c1", {
      imagePath: "/img",
      workPath: "/work",
      leaveRunning: false,
      tcpEstablished: true,
      externalUnixSockets: true,
      shellJob: true,
      fileLocks: true,
      emptyNamespaces: ["network"],
      cgroupsMode: "soft",
    }),
    [
      "checkpoint",
      "--image-path",
      "/img",
      "--work-path",
      "/work",
      "--tcp-established",
      "--ext-unix-sk",
      "--shell-job",
      "--file-locks",
      "--manage-cgroups-mode",
      "soft",
      "--empty-ns",
      "network",
      "c1",
    ],
  );
  assert.deepEqual(
    restoreArgs("c1", {
      bundle: "/b",
      imagePath: "/img",
      workPath: "/work",
      parentPath: "/parent",
      pidFile: "/b/init.pid",
      consoleSocket: "/tmp/console.sock",
      noPivot: true,
    }),
    [
      "restore",
      "--image-path",
      "/img",
      "--work-path",
      "/work",
      "--parent-path",
      "/parent",
      "--detach",
      "--pid-file",
      "/b/init.pid",
      "--console-socket",
      "/tmp/console.sock",
      "--no-pivot",
      "--no-subreaper",
      "--bundle",
      "/b",
      "c1",
    ],
  );
  assert.deepEqual(
    restoreArgs("c1", { bundle: "/b", imagePath: "/img", detach: false, noSubreaper: false }),
    ["restore", "--image-path", "/img", "--bundle", "/b", "c1"],
  );
});

Deno.test("Runc.restore() runs the runtime with the global flags, then restore's, and quotes its log on failure", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-restore-" });
  try {
    // A stand-in runtime that records its arguments and fails the way runc does, logging to --log.
    const bin = `${dir}/fake-runc`;
    await Deno.writeTextFile(
      bin,
      `#!/bin/sh
printf '%s\\n' "$@" > ${dir}/args
while [ $# -gt 0 ]; do
  if [ "$1" = --log ]; then log="$2"; fi
  shift
done
printf '%s\\n' '{"level":"error","msg":"criu failed: type RESTORE errno 0\\nlog file: /x/restore.log","time":"t"}' >> "$log"
exit 1
`,
      { mode: 0o755 },
    );
    const runc = new Runc({ binary: bin, root: `${dir}/state` });
    const err = await runc.restore("c1", {
      bundle: `${dir}/b`,
      imagePath: `${dir}/img`,
      pidFile: `${dir}/pid`,
    })
      .then(() => undefined, (e) => e);
    assert.ok(err instanceof RuncError);
    assert.match(err.message, /^.*fake-runc restore c1 failed: criu failed: type RESTORE errno 0\nlog file/);
    const args = (await Deno.readTextFile(`${dir}/args`)).trim().split("\n");
    assert.deepEqual(args.slice(0, 2), ["--root", `${dir}/state`]);
    assert.equal(args[2], "--log");
    assert.deepEqual(args.slice(4), [
      "--log-format",
      "json",
      "restore",
      "--image-path",
      `${dir}/img`,
      "--detach",
      "--pid-file",
      `${dir}/pid`,
      "--no-subreaper",
      "--bundle",
      `${dir}/b`,
      "c1",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("errorMessages() reads runc's JSON and logrus text logs", () => {
  const text = [
    'time="2026-01-01T00:00:00Z" level=warning msg="ignored"',
    'time="2026-01-01T00:00:00Z" level=error msg="criu failed: type DUMP errno 0\\nlog file: /w/dump.log"',
    '{"level":"fatal","msg":"container \\"x\\" does not exist","time":"t"}',
    "plain words",
  ].join("\n");
  assert.equal(
    errorMessages(text, false),
    'criu failed: type DUMP errno 0\nlog file: /w/dump.log; container "x" does not exist',
  );
  assert.match(errorMessages(text, true), /; plain words$/);
});
