/**
 * The CRI streaming server against the real Go client: client-go's SPDY executor (what kubectl exec and
 * attach use) and its SPDY dialer with the port forwarder's stream headers (tests/go/cri/streaming).
 * The runtime behind the server runs real processes on this host: `Deno.Command` for exec, a process
 * started beforehand for attach, a pty for terminal sessions, and a TCP server on 127.0.0.1 for
 * port forwarding.
 */
import assert from "node:assert/strict";
import { buildCriGoTests, hasCriGoClient, runGoTest } from "./helpers/go_client.ts";
import { Pty } from "./helpers/pty.ts";
import {
  type PortStream,
  type StreamingIO,
  type StreamingRuntime,
  StreamingServer,
  type TerminalSize,
} from "../src/core/cri/streaming/mod.ts";

const ignore = !hasCriGoClient;
let built: Promise<string> | undefined;
const goTests = () => built ??= buildCriGoTests("streaming");

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** Runs commands on this host as if they ran in containers; remembers what it did for the checks. */
class HostRuntime implements StreamingRuntime {
  readonly resizes: TerminalSize[] = [];
  /** The process attach connects to: started by the test, as a container's main process. */
  attachTarget: Deno.ChildProcess | undefined;

  async exec(containerId: string, cmd: readonly string[], io: StreamingIO): Promise<number> {
    if (containerId !== "c1") throw new Error(`Container ${JSON.stringify(containerId)} does not exist`);
    return io.tty ? await this.#execOnTerminal(cmd, io) : await this.#execOnPipes(cmd, io);
  }

  async #execOnPipes(cmd: readonly string[], io: StreamingIO): Promise<number> {
    const child = new Deno.Command(cmd[0]!, {
      args: cmd.slice(1),
      stdin: io.stdin ? "piped" : "null",
      stdout: io.stdout ? "piped" : "null",
      stderr: io.stderr ? "piped" : "null",
    }).spawn();
    const kill = () => child.kill("SIGKILL");
    io.signal.addEventListener("abort", kill, { once: true });
    const stdinDone = new AbortController();
    const ignore = () => {};
    if (io.stdin) io.stdin.pipeTo(child.stdin, { signal: stdinDone.signal }).catch(ignore);
    const outputs = [
      io.stdout && child.stdout.pipeTo(io.stdout).catch(ignore),
      io.stderr && child.stderr.pipeTo(io.stderr).catch(ignore),
    ];
    try {
      const status = await child.status;
      await Promise.all(outputs);
      return status.code;
    } finally {
      stdinDone.abort();
      io.signal.removeEventListener("abort", kill);
    }
  }

  async #execOnTerminal(cmd: readonly string[], io: StreamingIO): Promise<number> {
    const pty = new Pty();
    try {
      const child = pty.command(cmd).spawn();
      const kill = () => child.kill("SIGKILL");
      io.signal.addEventListener("abort", kill, { once: true });
      void (async () => {
        for await (const size of io.resize) {
          this.resizes.push(size);
          pty.resize(size.width, size.height);
        }
      })();
      const stdinDone = new AbortController();
      if (io.stdin) {
        io.stdin.pipeTo(new WritableStream({ write: (chunk) => void pty.write(chunk) }), {
          signal: stdinDone.signal,
        }).catch(() => {});
      }
      const output = (async () => {
        const writer = io.stdout?.getWriter();
        for await (const chunk of pty.output()) await writer?.write(chunk).catch(() => {});
        await writer?.close().catch(() => {});
      })();
      const status = await child.status;
      await output;
      stdinDone.abort();
      io.signal.removeEventListener("abort", kill);
      return status.code;
    } finally {
      pty.close();
    }
  }

  async attach(containerId: string, io: StreamingIO): Promise<void> {
    const target = this.attachTarget;
    if (containerId !== "c1" || !target) {
      throw new Error(`Container ${JSON.stringify(containerId)} is not running`);
    }
    const ignore = () => {};
    // The client's end of input ends the process's: this container's stdin is "once".
    await Promise.all([
      io.stdin?.pipeTo(target.stdin).catch(ignore),
      io.stdout && target.stdout.pipeTo(io.stdout).catch(ignore),
      io.stderr && target.stderr.pipeTo(io.stderr).catch(ignore),
      target.status,
    ]);
  }

  async portForward(podSandboxId: string, port: number, stream: PortStream): Promise<void> {
    if (podSandboxId !== "p1") throw new Error(`Pod sandbox ${JSON.stringify(podSandboxId)} does not exist`);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const up = (async () => {
        for await (const chunk of stream.readable) await writeAll(conn, chunk);
        await conn.closeWrite();
      })();
      const down = (async () => {
        const writer = stream.writable.getWriter();
        const buf = new Uint8Array(64 * 1024);
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) break;
          await writer.write(buf.slice(0, n));
        }
        await writer.close();
      })();
      await Promise.all([up, down]);
    } finally {
      conn.close();
    }
  }
}

/** A TCP server on loopback that greets each connection, then echoes it until the client half-closes. */
class EchoServer {
  readonly listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  readonly #conns = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;

  constructor(readonly greeting: string) {
    this.#accepting = (async () => {
      for await (const conn of this.listener) {
        const task: Promise<void> = this.#serve(conn).finally(() => this.#conns.delete(task));
        this.#conns.add(task);
      }
    })().catch(() => {});
  }

  get port(): number {
    return this.listener.addr.port;
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    try {
      await writeAll(conn, new TextEncoder().encode(this.greeting));
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        await writeAll(conn, buf.subarray(0, n));
      }
    } catch {
      /* the client went away */
    } finally {
      conn.close();
    }
  }

  async close(): Promise<void> {
    this.listener.close();
    await this.#accepting;
    await Promise.all(this.#conns);
  }
}

/** A started server over a HostRuntime, closed after `body`. */
async function withServer(
  body: (server: StreamingServer, runtime: HostRuntime) => Promise<void>,
): Promise<void> {
  const runtime = new HostRuntime();
  const server = new StreamingServer({ runtime, streamCreationTimeoutMs: 10_000 });
  await server.start();
  try {
    await body(server, runtime);
  } finally {
    await server.close();
  }
}

/** Runs one Go test; fails with its output unless it passed. Returns the seconds Go says it took. */
async function goTest(name: string, args: string[]): Promise<number> {
  const result = await runGoTest(await goTests(), name, { args, timeoutMs: 90_000 });
  assert.ok(result.passed, `${name} ${args.join(" ")} failed:\n${result.output}`);
  return Number(/^--- PASS: \S+ \(([0-9.]+)s\)/m.exec(result.output)?.[1]);
}

const execRequest = { containerId: "c1", stdout: true, stderr: true };

Deno.test({
  name: "Exec: client-go sees the command's stdout, stderr and non-zero exit code",
  ignore,
  fn: () =>
    withServer(async (server) => {
      const url = server.getExec({ ...execRequest, cmd: ["sh", "-c", "echo hi; echo err >&2; exit 7"] });
      const seconds = await goTest("TestStream", [
        "-url",
        url,
        "-want-stdout",
        "hi\n",
        "-want-stderr",
        "err\n",
        "-want-exit",
        "7",
      ]);
      // spdystream PINGs every 5 s; a frame that waited for other traffic would arrive with it.
      assert.ok(seconds < 4, `the session took ${seconds} s`);
    }),
});

Deno.test({
  name: "Exec: a command that exits 0 ends client-go's Stream without an error",
  ignore,
  fn: () =>
    withServer(async (server) => {
      const url = server.getExec({ ...execRequest, cmd: ["sh", "-c", "printf ok"] });
      await goTest("TestStream", ["-url", url, "-want-stdout", "ok", "-want-exit", "0"]);
    }),
});

Deno.test({
  name: "Exec: the client's stdin reaches the command, and its end closes the command's stdin",
  ignore,
  fn: () =>
    withServer(async (server) => {
      const url = server.getExec({ ...execRequest, stdin: true, cmd: ["cat"] });
      await goTest("TestStream", [
        "-url",
        url,
        "-use-stdin",
        "-stdin",
        "one\ntwo\n",
        "-want-stdout",
        "one\ntwo\n",
      ]);
    }),
});

Deno.test({
  name: "Exec: several MiB each way pass through cat intact",
  ignore,
  fn: () =>
    withServer(async (server) => {
      const url = server.getExec({ ...execRequest, stdin: true, cmd: ["cat"] });
      await goTest("TestStream", ["-url", url, "-stdin-len", String(6 * 1024 * 1024)]);
    }),
});

Deno.test({
  name: "Exec: several MiB of output arrive intact",
  ignore,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "berth-streaming-" });
    try {
      const data = new Uint8Array(8 * 1024 * 1024);
      for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
      await Deno.writeFile(`${dir}/blob`, data);
      const sum = [...new Uint8Array(await crypto.subtle.digest("SHA-256", data))]
        .map((b) => b.toString(16).padStart(2, "0")).join("");
      await withServer(async (server) => {
        const url = server.getExec({ ...execRequest, cmd: ["cat", `${dir}/blob`] });
        await goTest("TestStream", [
          "-url",
          url,
          "-want-stdout-sha256",
          sum,
          "-want-stdout-len",
          String(data.length),
        ]);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "Exec: on v3 and v2 a non-zero exit reaches the client as the status message",
  ignore,
  fn: () =>
    withServer(async (server) => {
      for (const protocol of ["v3.channel.k8s.io", "v2.channel.k8s.io"]) {
        const url = server.getExec({ ...execRequest, cmd: ["sh", "-c", "echo out; exit 3"] });
        await goTest("TestStream", [
          "-url",
          url,
          "-protocols",
          protocol,
          "-want-stdout",
          "out\n",
          "-want-error",
          "error executing remote command: command terminated with non-zero exit code: " +
          "error executing command [sh -c echo out; exit 3], exit code 3",
        ]);
      }
    }),
});

Deno.test({
  name: "Exec: with a terminal, the client's resize reaches the pty and the shell's exit code comes back",
  ignore,
  fn: () =>
    withServer(async (server, runtime) => {
      // Prints the terminal's size for each line read; runs a line that starts with "exit".
      const shell = 'while read -r l; do case "$l" in exit*) eval "$l";; *) stty size;; esac; done';
      const url = server.getExec({
        containerId: "c1",
        tty: true,
        stdin: true,
        stdout: true,
        cmd: ["sh", "-c", shell],
      });
      await goTest("TestTerminalResize", [
        "-url",
        url,
        "-resize",
        "123x45",
        "-exit-with",
        "3",
        "-want-exit",
        "3",
      ]);
      assert.deepEqual(runtime.resizes, [{ width: 123, height: 45 }]);
    }),
});

Deno.test({
  name: "Exec: a runtime failure reaches the client as an internal error status",
  ignore,
  fn: () =>
    withServer(async (server) => {
      const url = server.getExec({ ...execRequest, containerId: "gone", cmd: ["true"] });
      await goTest("TestStream", [
        "-url",
        url,
        "-want-error",
        'Internal error occurred: error executing command in container: Container "gone" does not exist',
      ]);
    }),
});

Deno.test({
  name: "Attach: the client reads a running process's stdout and stderr and feeds its stdin",
  ignore,
  fn: () =>
    withServer(async (server, runtime) => {
      runtime.attachTarget = new Deno.Command("sh", {
        args: ["-c", 'while read -r l; do echo "out:$l"; echo "err:$l" >&2; done'],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      try {
        const url = server.getAttach({ containerId: "c1", stdin: true, stdout: true, stderr: true });
        await goTest("TestStream", [
          "-url",
          url,
          "-use-stdin",
          "-stdin",
          "a\nb\n",
          "-want-stdout",
          "out:a\nout:b\n",
          "-want-stderr",
          "err:a\nerr:b\n",
        ]);
      } finally {
        try {
          runtime.attachTarget.kill("SIGKILL");
        } catch { /* exited */ }
        await runtime.attachTarget.status;
      }
    }),
});

Deno.test({
  name: "PortForward: concurrent forwarded connections carry bytes both ways over one session",
  ignore,
  fn: async () => {
    const echo = new EchoServer("hello from the pod\n");
    try {
      await withServer(async (server) => {
        const url = server.getPortForward({ podSandboxId: "p1" });
        await goTest("TestPortForward", [
          "-url",
          url,
          "-port",
          String(echo.port),
          "-conns",
          "4",
          "-payload",
          String(1024 * 1024),
          "-greeting",
          echo.greeting,
        ]);
      });
    } finally {
      await echo.close();
    }
  },
});

Deno.test({
  name: "PortForward: a port nobody listens on is reported on the error stream",
  ignore,
  fn: () =>
    withServer(async (server) => {
      const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = closed.addr.port;
      closed.close();
      const url = server.getPortForward({ podSandboxId: "p1" });
      await goTest("TestPortForwardError", [
        "-url",
        url,
        "-port",
        String(port),
        "-want-error",
        `Cannot forward port ${port} of pod sandbox p1:`,
      ]);
    }),
});

Deno.test({
  name: "A streaming URL works once: the second upgrade is refused",
  ignore,
  fn: () =>
    withServer(async (server) => {
      const url = server.getExec({ ...execRequest, cmd: ["true"] });
      await goTest("TestStream", ["-url", url]);
      await goTest("TestUpgradeRejected", [
        "-url",
        url,
        "-want-error",
        "Unknown, used or expired exec token",
      ]);
    }),
});
