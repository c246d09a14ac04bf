/**
 * The daemon under systemd: sd_notify readiness on NOTIFY_SOCKET (a datagram socket the test holds, as
 * systemd would) and journald's priority prefixes when stderr is the journal.
 */

import assert from "node:assert/strict";
import { socketSyscalls } from "../ffi/socket.ts";
import { BerthClient } from "../src/client/mod.ts";
import { mainTs, testDaemonConfig } from "./helpers/daemon.ts";
import { version } from "../src/version.ts";

const dec = new TextDecoder();

interface Spawned extends AsyncDisposable {
  readonly address: string;
  readonly process: Deno.ChildProcess;
  logs(): string;
  /** SIGTERM and wait; the exit code. */
  stop(): Promise<number>;
}

/**
 * `berth daemon` on private folders, not waited for: these tests watch the start themselves. `shell`
 * runs the deno command line through `sh -c` (it ends in `exec "$@"`), to set what the environment must
 * learn from the spawned process itself.
 */
async function spawnDaemon(
  options: { env?: Record<string, string>; args?: string[]; shell?: string } = {},
): Promise<Spawned> {
  const dir = await Deno.makeTempDir({ prefix: "berth-systemd-test-" });
  const address = `${dir}/berth.sock`;
  await Deno.writeTextFile(`${dir}/config.toml`, testDaemonConfig);
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
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) log += dec.decode(chunk, { stream: true });
  };
  const pumps = Promise.all([pump(process.stdout), pump(process.stderr)]);
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
