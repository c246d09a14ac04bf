import assert from "node:assert/strict";
import { fdSyscalls } from "../../ffi/fd.ts";
import { LibcProcessSyscalls } from "../../ffi/process.ts";
import { BinaryLogger, type LoggerContext } from "./binary_logger.ts";
import { fdPoller } from "../base/fd_poller.ts";
import type { Exit } from "./reaper.ts";

const proc = new LibcProcessSyscalls();
const fds = fdSyscalls();
const enc = new TextEncoder();

/**
 * Claims by polling waitpid for that one pid: a test process must not become a subreaper whose reaper
 * takes the exits of other tests' children.
 */
const reaper: LoggerContext["reaper"] = {
  claim(pid: number, onExit: (exit: Exit) => void): void {
    const timer = setInterval(() => {
      const st = proc.waitpidNoHang(pid);
      if (!st) return;
      clearInterval(timer);
      onExit({ pid, status: st.status, exitedAt: 0n });
    }, 10);
  },
};

async function withScript(body: string, fn: (path: string, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-logger-" });
  try {
    await Deno.writeTextFile(`${dir}/logger`, `#!/bin/sh\n${body}`, { mode: 0o755 });
    await fn(`${dir}/logger`, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function waitForText(path: string, want: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  let got = "";
  while ((got = await Deno.readTextFile(path).catch(() => "")) !== want) {
    if (Date.now() > deadline) {
      assert.fail(`${path} holds ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("BinaryLogger.start() hands the binary fds 3 and 4, the URI's arguments and its ids, once ready", async () => {
  // The readers are started before fd 5 is closed, so they hold a copy of it: ready is when the binary's
  // own fd 5 is closed, not when the pipe ends.
  const script = 'o="$2"; echo "$# $1 $CONTAINER_NAMESPACE/$CONTAINER_ID" > "$o.id"\n' +
    'cat <&3 > "$o.out" & cat <&4 > "$o.err" &\nexec 5>&-\nwait\n';
  await withScript(script, async (path, dir) => {
    const started = Date.now();
    const { logger, stdout, stderr } = await BinaryLogger.start({ path, args: ["out", `${dir}/log`] }, {
      id: "c1",
      namespace: "ns1",
      reaper,
      proc,
    });
    assert.ok(Date.now() - started < 2_000, `ready after ${Date.now() - started} ms`);
    fds.writeSync(stdout, enc.encode("to-out\n"));
    fds.writeSync(stderr, enc.encode("to-err\n"));
    fds.close(stdout);
    fds.close(stderr);
    await logger.stop();
    assert.equal(logger.exit?.status, 0);
    await waitForText(`${dir}/log.id`, "2 out ns1/c1\n");
    await waitForText(`${dir}/log.out`, "to-out\n");
    await waitForText(`${dir}/log.err`, "to-err\n");
    assert.equal(fdPoller().size, 0);
  });
});

Deno.test("BinaryLogger.start() fails and kills a binary that never says it is ready", async () => {
  await withScript("exec sleep 30\n", async (path) => {
    const err = await BinaryLogger.start({ path, args: [] }, {
      id: "c1",
      namespace: "ns1",
      reaper,
      proc,
      readyTimeoutMs: 200,
    }).then(() => undefined, (e) => e as Error);
    assert.ok(err);
    assert.match(
      err.message,
      new RegExp(`Logging binary ${path} for c1 did not close its ready pipe \\(fd 5\\) within 200 ms`),
    );
  });
  await assert.rejects(
    BinaryLogger.start({ path: "/nonexistent/logger", args: [] }, {
      id: "c1",
      namespace: "ns1",
      reaper,
      proc,
    }),
    /Cannot start logging binary \/nonexistent\/logger for c1: .*ENOENT/,
  );
});

Deno.test("BinaryLogger.stop() sends SIGTERM to a binary that outlives its input, then SIGKILL", async () => {
  const ctx = { id: "c1", namespace: "ns1", reaper, proc, graceMs: 50, termTimeoutMs: 300 };
  await withScript(
    `trap 'echo term > "$1"; exit 0' TERM\nexec 5>&-\nwhile :; do sleep 0.05; done\n`,
    async (path, dir) => {
      const { logger, stdout, stderr } = await BinaryLogger.start({ path, args: [`${dir}/term`] }, ctx);
      fds.close(stdout);
      fds.close(stderr);
      await logger.stop();
      assert.equal(logger.exit?.status, 0);
      assert.equal(await Deno.readTextFile(`${dir}/term`), "term\n");
    },
  );
  await withScript(`trap '' TERM\nexec 5>&-\nwhile :; do sleep 0.05; done\n`, async (path) => {
    const { logger, stdout, stderr } = await BinaryLogger.start({ path, args: [] }, ctx);
    fds.close(stdout);
    fds.close(stderr);
    await logger.stop();
    assert.equal(logger.exit?.status, 128 + 9);
  });
});
