/**
 * The runtime behind the CRI streaming server (containerd's streamRuntime): exec and attach over the
 * CRI's containers, and port-forward to 127.0.0.1 inside a pod's network namespace.
 */
import { failedPrecondition } from "../../base/errors.ts";
import { fdPoller } from "../../base/fd_poller.ts";
import { socketSyscalls } from "../../../ffi/socket.ts";
import type { CriService } from "./service.ts";
import type { PortStream, StreamingIO, StreamingRuntime } from "./streaming/mod.ts";

export function criStreamingRuntime(cri: CriService): StreamingRuntime {
  return {
    exec: (containerId, cmd, io) =>
      cri.exec(containerId, {
        cmd,
        tty: io.tty,
        stdin: io.stdin,
        stdout: io.stdout,
        stderr: io.stderr,
        resize: io.resize,
        signal: io.signal,
      }),
    attach: async (containerId, io) => {
      const c = cri.containers.get(containerId);
      if (io.tty) resizeInit(cri, c.id, io);
      await cri.containers.attach(c.id, io);
    },
    portForward: (podSandboxId, port, stream) => portForward(cri, podSandboxId, port, stream),
  };
}

/** Terminal sizes of an attached client go to the container's own process. */
function resizeInit(cri: CriService, id: string, io: StreamingIO): void {
  (async () => {
    for await (const size of io.resize) {
      await cri.containers.task(id).resizePty("", size).catch(() => {});
    }
  })().catch(() => {});
}

/** containerd's portForward: a TCP connection to localhost:port in the pod's network, both ways copied. */
async function portForward(cri: CriService, podSandboxId: string, port: number, stream: PortStream) {
  let sandbox;
  try {
    sandbox = cri.sandboxes.get(podSandboxId);
  } catch (err) {
    throw new Error(`failed to find sandbox "${podSandboxId}" in store: ${(err as Error).message}`);
  }
  if (sandbox.hostNetwork) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch((err) => {
      throw new Error(
        `failed to execute portforward in network namespace "host": failed to dial ${port}: ${err}`,
      );
    });
    await pipeBoth(stream, conn.readable, conn.writable, () => conn.closeWrite().catch(() => {}));
    return;
  }
  const netns = sandbox.metadata.netnsPath;
  if (netns === "") throw failedPrecondition(`network namespace for sandbox "${podSandboxId}" is closed`);
  const sys = socketSyscalls();
  const fd = sys.tcpSocketIn(netns);
  try {
    await sys.connectLoopback(fd, port);
  } catch (err) {
    sys.close(fd);
    throw new Error(
      `failed to execute portforward in network namespace "${netns}": failed to dial ${port}: ${
        (err as Error).message
      }`,
    );
  }
  const polled = fdPoller().attach(fd);
  const writable = new WritableStream<Uint8Array>({
    write: async (chunk) => {
      if (!await polled.write(chunk)) throw new Error(`Connection to port ${port} closed`);
    },
  });
  try {
    await pipeBoth(stream, polled.readable, writable, () => sys.shutdownWrite(fd));
  } finally {
    await polled.release();
    sys.close(fd);
  }
}

/**
 * Copies both ways, as containerd's portForward: once either direction ends, the other gets a second to
 * finish (socat's default), then the forward is over and what still runs is cut.
 */
async function pipeBoth(
  stream: PortStream,
  fromConn: ReadableStream<Uint8Array>,
  toConn: WritableStream<Uint8Array>,
  halfClose: () => unknown,
): Promise<void> {
  const cut = new AbortController();
  const signal = AbortSignal.any([stream.signal, cut.signal]);
  const up = stream.readable.pipeTo(toConn, { preventClose: true, signal })
    .catch(() => {})
    .finally(halfClose);
  const down = fromConn.pipeTo(stream.writable, { signal }).catch(() => {});
  await Promise.race([up, down]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([Promise.all([up, down]), new Promise((r) => timer = setTimeout(r, 1000))]);
  clearTimeout(timer);
  cut.abort();
  await Promise.all([up, down]);
}
