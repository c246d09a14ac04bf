/**
 * The debug endpoint (`[debug] address`, HTTP on a unix socket) and SIGUSR1's dump, on a real daemon.
 */

import assert from "node:assert/strict";
import { startDaemon, testDaemonConfig } from "./helpers/daemon.ts";
import { version } from "../src/version.ts";

/** GET `path` over the unix socket with curl: status and body. */
async function get(socket: string, path: string): Promise<{ status: number; body: string }> {
  const out = await new Deno.Command("curl", {
    args: ["-s", "--max-time", "30", "--unix-socket", socket, "-w", "\n%{http_code}", `http://berth${path}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, `curl ${path}: ${new TextDecoder().decode(out.stderr)}`);
  const i = text.lastIndexOf("\n");
  return { status: Number(text.slice(i + 1)), body: text.slice(0, i) };
}

async function getJson(socket: string, path: string): Promise<Record<string, unknown>> {
  const r = await get(socket, path);
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body);
}

async function withDebugDaemon(
  fn: (d: Awaited<ReturnType<typeof startDaemon>>, socket: string) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "berth-debug-test-" });
  const socket = `${dir}/debug.sock`;
  try {
    await using d = await startDaemon({
      dir,
      config: `${testDaemonConfig}[debug]\n  address = "${socket}"\n`,
    });
    await fn(d, socket);
    assert.equal(await d.stop(), 0, d.logs());
    assert.equal(
      await Deno.lstat(socket).then(() => true, () => false),
      false,
      "the debug socket is removed",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("[debug] address serves /debug/vars, /debug/calls with a call in flight, and /debug/heap", async () => {
  await withDebugDaemon(async (d, socket) => {
    assert.equal((await Deno.lstat(socket)).mode! & 0o777, 0o660);
    const vars = await getJson(socket, "/debug/vars");
    assert.equal(vars.version, version);
    assert.equal(vars.pid, d.process.pid);
    assert.equal(vars.shims, 0);
    assert.equal(vars.tasks, 0);
    assert.equal(typeof vars.connections, "number");
    assert.ok((vars.uptime_seconds as number) > 0, JSON.stringify(vars));
    assert.ok(((vars.memory as Deno.MemoryUsage).rss) > 0, JSON.stringify(vars));

    // An events subscription is a call that stays in flight until the client leaves.
    const client = d.client("debug-ns");
    const abort = new AbortController();
    const events = client.events.subscribe({}, { signal: abort.signal })[Symbol.asyncIterator]();
    const pending = events.next().catch(() => undefined);
    try {
      let sub: Record<string, unknown> | undefined;
      const deadline = Date.now() + 10_000;
      while (!sub && Date.now() < deadline) {
        const calls = JSON.parse((await get(socket, "/debug/calls")).body) as Record<string, unknown>[];
        sub = calls.find((c) => c.method === "containerd.services.events.v1.Events/Subscribe");
        if (!sub) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(sub, "the subscription is listed");
      assert.equal(sub.namespace, "debug-ns");
      assert.equal(typeof sub.ageMs, "number");
      await new Promise((r) => setTimeout(r, 300));
      const later = JSON.parse((await get(socket, "/debug/calls")).body) as Record<string, unknown>[];
      const again = later.find((c) => c.method === sub!.method)!;
      assert.ok((again.ageMs as number) >= (sub.ageMs as number) + 250, JSON.stringify(later));
      const busy = await getJson(socket, "/debug/vars");
      assert.ok((busy.calls_in_flight as number) >= 1, JSON.stringify(busy));
      assert.ok((busy.connections as number) >= 1, JSON.stringify(busy));
    } finally {
      abort.abort();
      await pending;
    }

    const heap = await getJson(socket, "/debug/heap");
    const path = heap.path as string;
    assert.ok(path.startsWith(`${d.state}/debug/`), path);
    const file = await Deno.open(path);
    try {
      const head = new Uint8Array(64);
      await file.read(head);
      assert.match(new TextDecoder().decode(head), /^\{\s*"snapshot"/);
    } finally {
      file.close();
    }
    assert.ok((await Deno.stat(path)).size > 1_000_000);

    const missing = await get(socket, "/debug/pprof");
    assert.equal(missing.status, 404);
    // The API kept serving through it all.
    assert.equal((await d.client().version.version({})).version, version);
  });
});

Deno.test("SIGUSR1 writes the debug dump to the log and the daemon keeps serving", async () => {
  await using d = await startDaemon({ args: ["--log-format", "json"] });
  for (let n = 1; n <= 2; n++) {
    d.process.kill("SIGUSR1");
    const deadline = Date.now() + 10_000;
    const dumps = () => d.logs().split("\n").filter((l) => l.includes('"msg":"debug dump"'));
    while (dumps().length < n) {
      assert.ok(Date.now() < deadline, `no debug dump #${n}:\n${d.logs()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const dump = JSON.parse(dumps()[n - 1]!);
    assert.equal(dump.vars.pid, d.process.pid);
    assert.equal(typeof dump.vars.calls_in_flight, "number");
    assert.ok(Array.isArray(dump.calls));
    assert.equal((await d.client().version.version({})).version, version);
  }
  assert.equal(await d.stop(), 0, d.logs());
});

Deno.test("A [debug] address that cannot be served fails the start naming it, and leaves no API socket", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-debug-test-" });
  try {
    // A folder under /proc cannot be made.
    const config = `${testDaemonConfig}[debug]\n  address = "/proc/berth-nope/debug.sock"\n`;
    await assert.rejects(startDaemon({ dir, config }), /Cannot listen on \/proc\/berth-nope\/debug\.sock/);
    assert.equal(await Deno.lstat(`${dir}/berth.sock`).then(() => true, () => false), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
