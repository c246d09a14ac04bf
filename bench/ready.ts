/** When does a freshly spawned daemon first answer? Polled from Deno's gRPC client or from ctr. */

import { listPlugins, tryVersion } from "./grpc_client.ts";
import type { Daemon } from "./targets.ts";
import { sleep } from "./sleep.ts";

const POLL_MS = 2;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Result of one `ctr version`: its wall time including process start, and whether it succeeded. */
export async function ctrVersion(
  socket: string,
  options: { connectTimeout?: string } = {},
): Promise<{ ok: boolean; ms: number; stderr: string }> {
  const t0 = performance.now();
  const out = await new Deno.Command("ctr", {
    args: ["-a", socket, "--connect-timeout", options.connectTimeout ?? "2s", "version"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  return {
    ok: out.success,
    ms: performance.now() - t0,
    stderr: new TextDecoder().decode(out.stderr).trim(),
  };
}

async function failure(daemon: Daemon, what: string): Promise<Error> {
  const tail = await daemon.logTail();
  return new Error(`${daemon.target} daemon ${what}${tail ? `; its log ends:\n${tail}` : ""}`);
}

async function poll(
  daemon: Daemon,
  timeoutMs: number,
  attempt: () => Promise<string | undefined>,
): Promise<number> {
  let exited = false;
  daemon.exited.then(() => exited = true);
  let lastError = "no attempt made";
  while (performance.now() - daemon.spawnedAt < timeoutMs) {
    if (exited) throw await failure(daemon, "exited before serving a Version call");
    // ctr blocks for its whole connect timeout on a missing socket; a stat costs microseconds.
    if (await exists(daemon.socket)) {
      const err = await attempt();
      if (err === undefined) return performance.now() - daemon.spawnedAt;
      lastError = err;
    }
    await sleep(POLL_MS);
  }
  throw await failure(
    daemon,
    `did not serve a Version call within ${timeoutMs} ms (last error: ${lastError})`,
  );
}

/** Milliseconds from spawn to the first Version answer to Deno's gRPC client. */
export function readyByGrpc(daemon: Daemon, options: { timeoutMs: number }): Promise<number> {
  return poll(daemon, options.timeoutMs, async () => {
    const r = await tryVersion(daemon.socket, { timeoutMs: 2_000 });
    return r instanceof Error ? r.message : undefined;
  });
}

/** Milliseconds from spawn to the first successful `ctr version` (Go client, process start included). */
export function readyByCtr(daemon: Daemon, options: { timeoutMs: number }): Promise<number> {
  return poll(daemon, options.timeoutMs, async () => {
    const r = await ctrVersion(daemon.socket);
    return r.ok ? undefined : r.stderr;
  });
}

/** Starts a daemon of target and waits until it has started every plugin; stops it again when it does not. */
export async function startReady(
  target: { start(): Promise<Daemon> },
  options: { timeoutMs?: number } = {},
): Promise<Daemon> {
  const daemon = await target.start();
  try {
    await readyByGrpc(daemon, { timeoutMs: options.timeoutMs ?? 30_000 });
    // Started, not only answering: the figures after this measure their operation, not the rest of a start.
    await listPlugins(daemon.socket, { timeoutMs: options.timeoutMs ?? 30_000 });
    return daemon;
  } catch (err) {
    await daemon.stop();
    throw err;
  }
}
