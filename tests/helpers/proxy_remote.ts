import assert from "node:assert/strict";
import {
  type ConnectRouter,
  createRouterTransport,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { errorInterceptor } from "../../src/services/errors.ts";

/**
 * A remote of a proxy plugin test (a Go program from buildGoProgram, serving `socket` and keeping its
 * data under `root`), started and waited for: it prints "ready" once it listens.
 */
export async function startRemote(bin: string, socket: string, root: string): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(bin, { args: [socket, root], stdout: "piped", stderr: "inherit" }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  if (!/ready/.test(value ?? "")) {
    await stopRemote(child);
    assert.fail(`The remote ${bin} did not start`);
  }
  reader.releaseLock();
  // Drained so that its pipe never fills.
  child.stdout.cancel().catch(() => {});
  return child;
}

/** Kills the remote (SIGKILL: as a crash) and waits for it. */
export async function stopRemote(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch { /* already gone */ }
  await child.status;
}

/**
 * An in-memory transport to a Berth service playing a proxy's remote, for the shared conformance suites
 * through a proxy client. The remote sees the namespace "remote", not the caller's: names it gets carry
 * the caller's, as a real remote's do. `close` runs when the transport is closed.
 */
export function memoryRemote(
  register: (router: ConnectRouter) => void,
  close: () => void,
): Transport & { close(): void } {
  const remoteNamespace: Interceptor = (next) => (req) => {
    req.header.set("containerd-namespace", "remote");
    return next(req);
  };
  const transport = createRouterTransport(register, {
    router: { interceptors: [errorInterceptor] },
    transport: { interceptors: [remoteNamespace] },
  });
  return Object.assign(transport, { close });
}
