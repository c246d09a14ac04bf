import assert from "node:assert/strict";
import { errorKind } from "../../../base/errors.ts";
import { StreamingServer, type StreamingServerOptions } from "./server.ts";
import type { PortStream, StreamingIO, StreamingRuntime } from "./types.ts";
import { ControlType, RstStatus } from "./spdy/frames.ts";
import { isControl, TestPeer } from "./spdy/test_peer.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A runtime whose behaviour each test sets; it records what it was asked. */
class ScriptedRuntime implements StreamingRuntime {
  readonly calls: string[] = [];
  exec: (containerId: string, cmd: readonly string[], io: StreamingIO) => Promise<number> = () =>
    Promise.resolve(0);
  attach: (containerId: string, io: StreamingIO) => Promise<void> = () => Promise.resolve();
  portForward: (podSandboxId: string, port: number, stream: PortStream) => Promise<void> = () =>
    Promise.resolve();
}

async function withServer(
  options: Partial<StreamingServerOptions>,
  body: (server: StreamingServer, runtime: ScriptedRuntime) => Promise<void>,
): Promise<void> {
  const runtime = new ScriptedRuntime();
  const server = new StreamingServer({ runtime, ...options });
  await server.start();
  try {
    await body(server, runtime);
  } finally {
    await server.close();
  }
}

interface Answer {
  readonly status: number;
  readonly head: string;
  readonly body: string;
  /** After a 101: the SPDY session's client end. */
  readonly peer?: TestPeer;
}

/** An HTTP request as client-go's SPDY round tripper sends it, by hand, so that it can be wrong. */
async function request(
  url: string,
  options: { method?: string; protocols?: string[]; upgrade?: boolean; path?: string } = {},
): Promise<Answer> {
  const u = new URL(url);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  let text = `${options.method ?? "POST"} ${options.path ?? u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\n`;
  if (options.upgrade !== false) text += "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n";
  for (const p of options.protocols ?? ["v4.channel.k8s.io"]) text += `X-Stream-Protocol-Version: ${p}\r\n`;
  await conn.write(enc.encode(text + "\r\n"));
  let bytes = new Uint8Array(0);
  const buf = new Uint8Array(4096);
  let end = -1;
  while (end < 0) {
    const n = await conn.read(buf);
    if (n === null) break;
    bytes = new Uint8Array([...bytes, ...buf.subarray(0, n)]);
    end = dec.decode(bytes).indexOf("\r\n\r\n");
  }
  assert.ok(end >= 0, `No response head in ${JSON.stringify(dec.decode(bytes))}`);
  const head = dec.decode(bytes.subarray(0, end));
  const status = Number(head.split(" ")[1]);
  const rest = bytes.subarray(end + 4);
  if (status === 101) return { status, head, body: "", peer: new TestPeer(conn, { initial: rest }) };
  let body = dec.decode(rest);
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    body += dec.decode(buf.subarray(0, n));
  }
  conn.close();
  return { status, head, body };
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("Timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

const execReq = { containerId: "c1", cmd: ["true"], stdout: true };

Deno.test("StreamingServer hands out one URL per request under its address", async () => {
  await withServer({}, (server) => {
    const { port } = server.addr;
    const a = server.getExec(execReq);
    const b = server.getExec(execReq);
    assert.match(a, new RegExp(`^http://127\\.0\\.0\\.1:${port}/exec/[A-Za-z0-9_-]{22}$`));
    assert.notEqual(a, b);
    assert.match(server.getAttach({ containerId: "c1", stdout: true }), /\/attach\//);
    assert.match(server.getPortForward({ podSandboxId: "p1" }), /\/portforward\//);
    return Promise.resolve();
  });
});

Deno.test("StreamingServer resolves URLs against a base URL with a path", async () => {
  await withServer({ baseUrl: "http://node.example:10010/cri" }, async (server) => {
    const url = server.getExec(execReq);
    assert.match(url, /^http:\/\/node\.example:10010\/cri\/exec\/[A-Za-z0-9_-]{22}$/);
    // Served under the same path on the real address.
    const local = `http://127.0.0.1:${server.addr.port}${new URL(url).pathname}`;
    const answer = await request(local);
    assert.equal(answer.status, 101);
    await answer.peer!.close();
  });
});

Deno.test("StreamingServer refuses exec and attach requests containerd refuses", async () => {
  await withServer({}, (server) => {
    const invalid = (f: () => unknown, re: RegExp) =>
      assert.throws(f, (e) => errorKind(e) === "invalid_argument" && re.test(String(e)));
    invalid(() => server.getExec({ ...execReq, containerId: "" }), /container id is missing/);
    invalid(
      () => server.getExec({ ...execReq, tty: true, stderr: true }),
      /tty and stderr cannot both be set/,
    );
    invalid(() => server.getExec({ containerId: "c1", cmd: ["true"] }), /one of stdin, stdout and stderr/);
    invalid(() => server.getExec({ ...execReq, cmd: [] }), /command is empty/);
    invalid(() => server.getAttach({ containerId: "c1", tty: true, stderr: true }), /tty and stderr/);
    invalid(() => server.getPortForward({ podSandboxId: "" }), /pod sandbox id is missing/);
    return Promise.resolve();
  });
});

Deno.test("StreamingServer answers 404 to an unknown token and to a token used on another endpoint", async () => {
  await withServer({}, async (server) => {
    const attach = new URL(server.getAttach({ containerId: "c1", stdout: true }));
    const token = attach.pathname.split("/").pop();
    const wrongKind = await request(attach.href, { path: `/exec/${token}` });
    assert.equal(wrongKind.status, 404);
    // A token is consumed by the attempt, as in the kubelet.
    assert.equal((await request(attach.href)).status, 404);
    assert.equal((await request(attach.href, { path: "/exec/nosuchtoken" })).status, 404);
    assert.equal((await request(attach.href, { path: "/" })).status, 404);
  });
});

Deno.test("StreamingServer answers 405 to methods other than GET and POST", async () => {
  await withServer({}, async (server) => {
    const answer = await request(server.getExec(execReq), { method: "PUT" });
    assert.equal(answer.status, 405);
    assert.match(answer.head, /\r\nAllow: GET, POST/);
  });
});

Deno.test("StreamingServer negotiates the protocol as httpstream.Handshake does", async () => {
  await withServer({}, async (server) => {
    const none = await request(server.getExec(execReq), { protocols: [] });
    assert.equal(none.status, 400);
    assert.match(none.body, /X-Stream-Protocol-Version is required/);
    const v1 = await request(server.getExec(execReq), { protocols: ["channel.k8s.io"] });
    assert.equal(v1.status, 403);
    assert.match(v1.head, /X-Accepted-Stream-Protocol-Versions: v4\.channel\.k8s\.io\r\n/);
    assert.match(v1.head, /X-Accepted-Stream-Protocol-Versions: v2\.channel\.k8s\.io/);
    const pf = await request(server.getPortForward({ podSandboxId: "p1" }), {
      protocols: ["v4.channel.k8s.io"],
    });
    assert.equal(pf.status, 403);
    const v3 = await request(server.getExec(execReq), {
      protocols: ["v3.channel.k8s.io", "v4.channel.k8s.io"],
    });
    assert.equal(v3.status, 101);
    assert.match(v3.head, /\r\nX-Stream-Protocol-Version: v3\.channel\.k8s\.io/);
    await v3.peer!.close();
  });
});

Deno.test("StreamingServer answers 400 to a request without the SPDY/3.1 upgrade headers", async () => {
  await withServer({}, async (server) => {
    const answer = await request(server.getExec(execReq), { upgrade: false });
    assert.equal(answer.status, 400);
    assert.match(answer.body, /Connection: Upgrade and Upgrade: SPDY\/3\.1/);
  });
});

Deno.test("StreamingServer drops a client that does not send its request head in time", async () => {
  await withServer({ head: { timeoutMs: 200 } }, async (server) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    try {
      await conn.write(enc.encode("POST /exec/x HTTP/1.1\r\n"));
      const buf = new Uint8Array(1024);
      const n = await conn.read(buf);
      assert.match(dec.decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 408 /);
    } finally {
      conn.close();
    }
  });
});

Deno.test("StreamingServer answers 503 to connections beyond maxConnections", async () => {
  await withServer({ maxConnections: 1 }, async (server) => {
    const holder = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    try {
      // The first connection is being served (it has not sent its head yet).
      await new Promise((r) => setTimeout(r, 50));
      const answer = await request(server.getExec(execReq));
      assert.equal(answer.status, 503);
    } finally {
      holder.close();
    }
  });
});

Deno.test("StreamingServer runs an exec and reports its exit code as v4 JSON after the output", async () => {
  await withServer({}, async (server, runtime) => {
    runtime.exec = async (containerId, cmd, io) => {
      runtime.calls.push(`exec ${containerId} ${cmd.join(" ")}`);
      const w = io.stdout!.getWriter();
      await w.write(enc.encode("out"));
      await w.close();
      return 3;
    };
    const { peer } = await request(server.getExec({ ...execReq, cmd: ["sh", "-c", "exit 3"] }));
    try {
      await peer!.synStream(1, { streamType: "error" });
      await peer!.synStream(3, { streamType: "stdout" });
      assert.equal(dec.decode(await peer!.readStream(3)), "out");
      assert.equal(
        dec.decode(await peer!.readStream(1)),
        `{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: ` +
          `error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode",` +
          `"details":{"causes":[{"reason":"ExitCode","message":"3"}]}}`,
      );
      assert.deepEqual(runtime.calls, ["exec c1 sh -c exit 3"]);
      // The session ends with GOAWAY and the server hangs up.
      const rest = await peer!.closed();
      assert.ok(rest.some((f) => isControl(f, ControlType.goaway)));
    } finally {
      await peer!.close();
    }
  });
});

Deno.test("StreamingServer refuses a stream type the request did not ask for", async () => {
  await withServer({}, async (server) => {
    const { peer } = await request(server.getExec(execReq));
    try {
      await peer!.synStream(1, { streamType: "stdin" });
      const rst = await peer!.until((f) => isControl(f, ControlType.rstStream));
      assert.ok(rst.kind === "control" && rst.frame.type === ControlType.rstStream);
      assert.equal(rst.frame.status, RstStatus.refusedStream);
    } finally {
      await peer!.close();
    }
  });
});

Deno.test("StreamingServer ends a session whose client does not open its streams in time", async () => {
  await withServer({ streamCreationTimeoutMs: 200 }, async (server, runtime) => {
    runtime.exec = () => {
      runtime.calls.push("exec");
      return Promise.resolve(0);
    };
    const { peer } = await request(server.getExec(execReq));
    try {
      // The error stream only; stdout never comes.
      await peer!.synStream(1, { streamType: "error" });
      await peer!.closed(3000);
      assert.deepEqual(runtime.calls, []);
    } finally {
      await peer!.close();
    }
  });
});

Deno.test("StreamingServer ends a session idle for longer than streamIdleTimeoutMs", async () => {
  await withServer({ streamIdleTimeoutMs: 200 }, async (server) => {
    const { peer } = await request(server.getPortForward({ podSandboxId: "p1" }), {
      protocols: ["portforward.k8s.io"],
    });
    try {
      const started = Date.now();
      await peer!.closed(3000);
      assert.ok(Date.now() - started >= 150);
    } finally {
      await peer!.close();
    }
  });
});

Deno.test("StreamingServer.close() aborts the runtime's signal and ends the session", async () => {
  const aborted = Promise.withResolvers<void>();
  await withServer({}, async (server, runtime) => {
    runtime.attach = (_id, io) => {
      runtime.calls.push("attach");
      return new Promise((resolve) => {
        io.signal.addEventListener("abort", () => {
          aborted.resolve();
          resolve();
        });
      });
    };
    const { peer } = await request(server.getAttach({ containerId: "c1", stdout: true }));
    try {
      await peer!.synStream(1, { streamType: "error" });
      await peer!.synStream(3, { streamType: "stdout" });
      await until(() => runtime.calls.length === 1);
      await server.close();
      await aborted.promise;
      await peer!.closed();
    } finally {
      await peer!.close();
    }
  });
});

Deno.test("StreamingServer pairs port-forward streams by requestID and reports failures on the error stream", async () => {
  await withServer({}, async (server, runtime) => {
    runtime.portForward = async (pod, port, stream) => {
      runtime.calls.push(`${pod}:${port}`);
      if (port === 81) throw new Error("connection refused");
      const w = stream.writable.getWriter();
      for await (const chunk of stream.readable) await w.write(chunk);
      await w.close();
    };
    const { peer } = await request(server.getPortForward({ podSandboxId: "p1" }), {
      protocols: ["portforward.k8s.io"],
    });
    try {
      // Request 0 forwards port 80 (an echo); request 1 port 81, which fails. Streams interleave.
      await peer!.synStream(1, { streamType: "error", port: "80", requestID: "0" }, 1);
      await peer!.synStream(3, { streamType: "error", port: "81", requestID: "1" }, 1);
      await peer!.synStream(5, { streamType: "data", port: "80", requestID: "0" });
      await peer!.synStream(7, { streamType: "data", port: "81", requestID: "1" });
      await peer!.synStream(9, { streamType: "data", port: "0", requestID: "2" });
      await peer!.data(5, "ping", true);
      assert.equal(dec.decode(await peer!.readStream(5)), "ping");
      assert.equal(dec.decode(await peer!.readStream(1)), "");
      assert.equal(
        dec.decode(await peer!.readStream(3)),
        "Cannot forward port 81 of pod sandbox p1: connection refused",
      );
      assert.deepEqual(runtime.calls.sort(), ["p1:80", "p1:81"]);
      // Port 0 is no port: that stream was refused.
      const rst = await peer!.until((f) => isControl(f, ControlType.rstStream, 9));
      assert.ok(rst.kind === "control" && rst.frame.type === ControlType.rstStream);
      assert.equal(rst.frame.status, RstStatus.refusedStream);
    } finally {
      await peer!.close();
    }
  });
});
