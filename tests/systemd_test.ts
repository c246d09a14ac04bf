/**
 * The daemon under systemd: sd_notify readiness on NOTIFY_SOCKET (a datagram socket the test holds, as
 * systemd would) and journald's priority prefixes when stderr is the journal.
 */

import assert from "node:assert/strict";
import { socketSyscalls } from "../ffi/socket.ts";
import { BerthClient } from "../src/client/mod.ts";
import { mainTs, testDaemonConfig } from "./helpers/daemon.ts";
import { version } from "../src/version.ts";
import { setup, teardown } from "./helpers/tasks.ts";

const dec = new TextDecoder();

interface Spawned extends AsyncDisposable {
  readonly address: string;
  readonly process: Deno.ChildProcess;
  logs(): string;
  /** What the daemon wrote to stderr alone. */
  stderr(): string;
  /** SIGTERM and wait; the exit code. */
  stop(): Promise<number>;
}

/**
 * `berth daemon` on private folders, not waited for: these tests watch the start themselves. `shell`
 * runs the deno command line through `sh -c` (it ends in `exec "$@"`), to set what the environment must
 * learn from the spawned process itself.
 */
async function spawnDaemon(
  options: { env?: Record<string, string>; args?: string[]; shell?: string; config?: string } = {},
): Promise<Spawned> {
  const dir = await Deno.makeTempDir({ prefix: "berth-systemd-test-" });
  const address = `${dir}/berth.sock`;
  await Deno.writeTextFile(`${dir}/config.toml`, options.config ?? testDaemonConfig);
  const argv = [
    Deno.execPath(),
    ...["run", "-A", "--quiet", mainTs, "daemon", "--address", address, "--root", `${dir}/root`],
    ...["--state", `${dir}/state`, "--config", `${dir}/config.toml`, ...(options.args ?? [])],
  ];
  const [cmd, ...args] = options.shell ? ["sh", "-c", options.shell, "sh", ...argv] : argv;
  const process = new Deno.Command(cmd!, {
    args,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  let errLog = "";
  const pump = async (s: ReadableStream<Uint8Array>, isErr: boolean) => {
    const d = new TextDecoder();
    for await (const chunk of s) {
      const text = d.decode(chunk, { stream: true });
      log += text;
      if (isErr) errLog += text;
    }
  };
  const pumps = Promise.all([pump(process.stdout, false), pump(process.stderr, true)]);
  let done = false;
  const stop = async () => {
    if (!done) {
      done = true;
      try {
        process.kill("SIGTERM");
      } catch { /* gone */ }
    }
    const timer = setTimeout(() => {
      try {
        process.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5000);
    const { code } = await process.status;
    clearTimeout(timer);
    await pumps;
    return code;
  };
  return {
    address,
    process,
    logs: () => log,
    stderr: () => errLog,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** A datagram socket bound where systemd's would be; closed (and its file removed) on dispose. */
function notifySocket(address: string) {
  const sys = socketSyscalls();
  const fd = sys.bindDatagram(address);
  return {
    fd,
    async next(timeoutMs: number): Promise<string | null> {
      const msg = await sys.receiveDatagram(fd, timeoutMs);
      return msg === null ? null : dec.decode(msg);
    },
    [Symbol.dispose]() {
      sys.close(fd);
      if (!address.startsWith("@")) Deno.removeSync(address);
    },
  };
}

/** Waits until the daemon answers calls. */
async function served(d: Spawned): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await versionOf(d.address);
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(`Daemon did not serve: ${(err as Error).message}\n${d.logs()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function versionOf(address: string): Promise<string> {
  const client = new BerthClient(address, { timeoutMs: 2000 });
  try {
    return (await client.version.version({})).version;
  } finally {
    client.close();
  }
}

for (const kind of ["a path", "an abstract"] as const) {
  Deno.test(`berth daemon sends READY=1 to ${kind} NOTIFY_SOCKET once the API answers, STOPPING=1 at SIGTERM`, async () => {
    const tmp = await Deno.makeTempDir({ prefix: "berth-notify-" });
    const address = kind === "a path" ? `${tmp}/notify.sock` : `@berth-test-${crypto.randomUUID()}`;
    try {
      using sock = notifySocket(address);
      await using d = await spawnDaemon({ env: { NOTIFY_SOCKET: address } });
      const ready = await sock.next(30_000);
      assert.equal(ready, "READY=1", `no READY=1 within 30 s:\n${d.logs()}`);
      // At READY the API must answer at once, without a retry.
      assert.equal(await versionOf(d.address), version);
      assert.equal(await sock.next(200), null, "READY=1 is sent once");

      assert.equal(await d.stop(), 0, d.logs());
      assert.equal(await sock.next(1000), "STOPPING=1");
      assert.doesNotMatch(d.logs(), /cannot notify systemd/);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  });
}

Deno.test("A NOTIFY_SOCKET nobody listens on is a warning, not a failed start", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "berth-notify-" });
  try {
    await using d = await spawnDaemon({ env: { NOTIFY_SOCKET: `${tmp}/absent.sock` } });
    const deadline = Date.now() + 30_000;
    while (!/cannot notify systemd/.test(d.logs())) {
      assert.ok(Date.now() < deadline, d.logs());
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(await versionOf(d.address), version);
    assert.equal(await d.stop(), 0, d.logs());
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/** Sets JOURNAL_STREAM to the device and inode of the stderr the daemon is about to get, as systemd does. */
const asJournal = 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); export JOURNAL_STREAM; exec "$@"';

Deno.test("With JOURNAL_STREAM naming its stderr, every log line starts with its syslog priority", async () => {
  // An unknown key is logged at warn.
  const config = `${testDaemonConfig}not_a_berth_key = 1\n`;
  await using d = await spawnDaemon({ shell: asJournal, config, args: ["--log-level", "debug"] });
  await served(d);
  assert.equal(await d.stop(), 0, d.logs());
  const lines = d.stderr().split("\n").filter((l) => l !== "");
  for (const l of lines) assert.match(l, /^<[0-7]>time="/, `a line without a priority:\n${d.stderr()}`);
  assert.ok(lines.some((l) => /^<6>.*msg="starting berth"/.test(l)), d.stderr());
  assert.ok(
    lines.some((l) => /^<4>.*msg="config key is not implemented by Berth: ignored"/.test(l)),
    d.stderr(),
  );
  assert.ok(lines.some((l) => /^<7>.*msg=call /.test(l)), d.stderr());
});

Deno.test("A JOURNAL_STREAM naming another stream (stderr redirected since) leaves lines without priorities", async () => {
  await using d = await spawnDaemon({ env: { JOURNAL_STREAM: "1:1" } });
  await served(d);
  assert.equal(await d.stop(), 0, d.logs());
  assert.match(d.stderr(), /^time="/);
  assert.doesNotMatch(d.stderr(), /^<\d>/m);
});

Deno.test("--log-format json stays one valid object per line under many concurrent callers", async () => {
  await using d = await spawnDaemon({ args: ["--log-format", "json", "--log-level", "debug"] });
  await served(d);
  // Lines longer than a pipe's atomic write (4096 bytes): a failed call logs the refused name.
  const longName = `bad name ${"x".repeat(10_000)}`;
  const callers = 24;
  const perCaller = 40;
  const clients = Array.from({ length: callers }, () => new BerthClient(d.address, { timeoutMs: 20_000 }));
  // SIGUSR1's dump is one more producer, with the longest lines of all.
  const dumps = (async () => {
    for (let n = 0; n < 5; n++) {
      await new Promise((r) => setTimeout(r, 20));
      d.process.kill("SIGUSR1");
    }
  })();
  try {
    await Promise.all(clients.map(async (c, i) => {
      for (let n = 0; n < perCaller; n++) {
        if (n % 4 === 0) {
          await c.namespaces.create({ namespace: { name: `${longName}-${i}-${n}` } }).catch(() => {});
        } else await c.version.version({});
      }
    }));
  } finally {
    await dumps;
    for (const c of clients) c.close();
  }
  const deadline = Date.now() + 10_000;
  // Signals sent close together may arrive as one.
  while (!d.stderr().includes('"msg":"debug dump"')) {
    assert.ok(Date.now() < deadline, `no debug dump:\n${d.stderr().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(await d.stop(), 0, d.logs());
  const lines = d.stderr().split("\n");
  assert.equal(lines.pop(), "", "the log ends with a whole line");
  const calls = lines.map((l, i) => {
    try {
      return JSON.parse(l);
    } catch (err) {
      throw new Error(`Line ${i + 1} is not one JSON object (${(err as Error).message}): ${l.slice(0, 300)}`);
    }
  }).filter((o) => o.msg === "call" || o.msg === "call failed");
  assert.ok(calls.length >= callers * perCaller, `${calls.length} call lines`);
  assert.ok(calls.some((o) => o.msg === "call failed" && String(o.error).length > 4096));
});

Deno.test("Shims do not inherit NOTIFY_SOCKET: only the daemon speaks to systemd", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "berth-notify-" });
  try {
    using sock = notifySocket(`${tmp}/notify.sock`);
    const env = await setup(undefined, "berth", { NOTIFY_SOCKET: `${tmp}/notify.sock` });
    try {
      assert.equal(await sock.next(30_000), "READY=1");
      const run = await env.ctr(["run", "-d", env.image, "notify-env", "sleep", "1000"]);
      assert.equal(run.code, 0, run.stderr);
      const ls = await env.ctr(["task", "ls"]);
      const pid = /^notify-env\s+(\d+)\s+RUNNING/m.exec(ls.stdout)?.[1];
      assert.ok(pid, ls.stdout);
      // The shim is the subreaper its containers are reparented to.
      const shim = /^PPid:\s+(\d+)$/m.exec(await Deno.readTextFile(`/proc/${pid}/status`))?.[1];
      const cmdline = (await Deno.readTextFile(`/proc/${shim}/cmdline`)).split("\0");
      assert.ok(cmdline.includes("shim"), cmdline.join(" "));
      const environ = (await Deno.readTextFile(`/proc/${shim}/environ`)).split("\0");
      assert.ok(!environ.some((e) => e.startsWith("NOTIFY_SOCKET=")), environ.join("\n"));
      assert.equal(await sock.next(200), null, "nothing but the daemon's READY=1 arrived");
    } finally {
      await teardown(env);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
