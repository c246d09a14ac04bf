import assert from "node:assert/strict";
import {
  decodeWaitStatus,
  FakeProcessSyscalls,
  LibcProcessSyscalls,
  reapOrphans,
  SyscallError,
} from "./process.ts";
import { fdSyscalls } from "./fd.ts";
import { errorKind } from "../src/base/errors.ts";

const sys = new LibcProcessSyscalls();

Deno.test("LibcProcessSyscalls as subreaper reaps reparented orphans without stealing Deno.Command's child", async () => {
  // In a child process: a reaper here would take the exit statuses of other test files' children.
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", new URL("./testdata/reaper_scenarios.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  assert.match(text, /^ok reaps-orphan$/m);
  assert.match(text, /^ok kill-orphan$/m);
});

Deno.test("LibcProcessSyscalls reports errno as a typed SyscallError", () => {
  // Pid 2^22+1 is above pid_max's ceiling on 64-bit Linux, so nothing can have it.
  const err = (() => {
    try {
      sys.kill(4194305, 0);
    } catch (e) {
      return e;
    }
  })();
  assert.ok(err instanceof SyscallError);
  assert.equal(err.errno, 3);
  assert.equal(errorKind(err), "not_found");
  assert.match(err.message, /ESRCH/);
  assert.throws(() => sys.waitpidNoHang(-1), /EINVAL/);
  assert.ok(sys.getpid() === Deno.pid);
});

Deno.test("decodeWaitStatus() tells exit codes from signals", () => {
  assert.deepEqual(decodeWaitStatus(1, 7 << 8), { pid: 1, exitCode: 7, status: 7 });
  assert.deepEqual(decodeWaitStatus(1, 9), { pid: 1, signal: 9, status: 137 });
  assert.deepEqual(decodeWaitStatus(1, 0), { pid: 1, exitCode: 0, status: 0 });
});

Deno.test("LibcProcessSyscalls.zombieChildren() lists our exited children, not running ones", async () => {
  const done = sys.spawn("/bin/sh", ["-c", "exit 3"]);
  const running = sys.spawn("/bin/sleep", ["30"]);
  try {
    let zombies: number[] = [];
    for (let i = 0; i < 200 && !zombies.includes(done); i++) {
      await new Promise((r) => setTimeout(r, 10));
      zombies = sys.zombieChildren();
    }
    assert.ok(zombies.includes(done), `exited child ${done} not among ${zombies}`);
    assert.ok(!zombies.includes(running), "a running child is listed");
    assert.deepEqual(sys.waitpidNoHang(done), { pid: done, exitCode: 3, status: 3 });
    assert.ok(!sys.zombieChildren().includes(done), "a reaped child is still listed");
  } finally {
    sys.kill(running, 9);
    for (let i = 0; i < 200 && sys.waitpidNoHang(running) === null; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
});

Deno.test("reapOrphans() skips pids in the skip set and records what it reaped", () => {
  const fake = new FakeProcessSyscalls();
  fake.zombies = [10, 11, 12];
  fake.exits.set(10, { pid: 10, exitCode: 0, status: 0 });
  fake.exits.set(12, { pid: 12, signal: 9, status: 137 });
  fake.exits.set(11, { pid: 11, exitCode: 1, status: 1 });
  const got = reapOrphans(fake, new Set([11]));
  assert.deepEqual(got.map((s) => s.pid), [10, 12]);
  assert.deepEqual(
    fake.calls.filter((c) => c.name === "waitpidNoHang").map((c) => c.args[0]),
    [10, 12],
  );
  fake.failures.set("waitpidNoHang", 10); // ECHILD: reaped elsewhere meanwhile
  assert.deepEqual(reapOrphans(fake, new Set()), []);
});

Deno.test("LibcProcessSyscalls.spawn() hands the child the named descriptors and only the given environment", async () => {
  const fds = fdSyscalls();
  const [outR, outW] = fds.pipe();
  const [inR, inW] = fds.pipe();
  let pid = 0;
  try {
    const script =
      'printf "%s|%s|%s|" "$FOO" "${HOME-unset}" "$(readlink /proc/$$/fd/0)" >&3; cat <&4 >&3; exit 7';
    pid = sys.spawn("/bin/sh", ["-c", script], { env: ["FOO=bar"], fds: new Map([[3, outW], [4, inR]]) });
    fds.close(outW);
    fds.close(inR);
    fds.writeSync(inW, new TextEncoder().encode("piped"));
    fds.close(inW);
    let text = "";
    const buf = new Uint8Array(256);
    for (let n; (n = await fds.read(outR, buf)) > 0;) text += new TextDecoder().decode(buf.subarray(0, n));
    assert.equal(text, "bar|unset|/dev/null|piped");
    let status = null;
    while (!(status = sys.waitpidNoHang(pid))) await new Promise((r) => setTimeout(r, 10));
    assert.equal(status.status, 7);
  } finally {
    fds.close(outR);
  }
  // Deno ignores SIGPIPE; the child must not inherit that, or a writer to a closed pipe spins on EPIPE.
  const [deadR, deadW] = fds.pipe();
  fds.close(deadR);
  pid = sys.spawn("/bin/sh", ["-c", "i=0; while [ $i -lt 100000 ]; do echo y; i=$((i+1)); done; exit 3"], {
    fds: new Map([[1, deadW]]),
  });
  fds.close(deadW);
  let piped = null;
  while (!(piped = sys.waitpidNoHang(pid))) await new Promise((r) => setTimeout(r, 10));
  assert.equal(piped.status, 128 + 13);
  const missing = (() => {
    try {
      sys.spawn("/nonexistent/logger", []);
    } catch (e) {
      return e;
    }
  })();
  assert.ok(missing instanceof SyscallError);
  assert.equal(missing.errno, 2);
});
