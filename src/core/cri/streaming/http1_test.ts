import assert from "node:assert/strict";
import {
  checkSpdyUpgrade,
  encodeResponse,
  HttpError,
  negotiateProtocol,
  parseHead,
  readRequestHead,
  type RequestHead,
} from "./http1.ts";

const enc = new TextEncoder();
const limits = { maxBytes: 1024, maxHeaders: 20, timeoutMs: 2000 };

/** A request as client-go's SPDY round tripper writes it. */
const goRequest =
  "POST /exec/abc?x=1 HTTP/1.1\r\nHost: 127.0.0.1:1234\r\nUser-Agent: Go-http-client/1.1\r\n" +
  "Content-Length: 0\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n" +
  "X-Stream-Protocol-Version: v3.channel.k8s.io\r\nX-Stream-Protocol-Version: v2.channel.k8s.io\r\n" +
  "X-Stream-Protocol-Version: channel.k8s.io\r\nAccept-Encoding: gzip\r\n\r\n";

function head(text: string): RequestHead {
  return parseHead(enc.encode(text.replace(/\r\n\r\n$/, "")), limits);
}

/** A connection pair on loopback: the client end and the server end. */
async function pair(): Promise<[Deno.Conn, Deno.Conn]> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const server = await accepted;
  listener.close();
  return [client, server];
}

Deno.test("parseHead reads a Go client's upgrade request", () => {
  const h = head(goRequest);
  assert.equal(h.method, "POST");
  assert.equal(h.path, "/exec/abc");
  assert.equal(h.headers.get("x-stream-protocol-version")?.length, 4);
  checkSpdyUpgrade(h);
  assert.equal(negotiateProtocol(h, ["v4.channel.k8s.io", "v3.channel.k8s.io"]), "v4.channel.k8s.io");
});

Deno.test("negotiateProtocol follows the client's order and splits comma-separated values", () => {
  const h = head(
    "GET /x HTTP/1.1\r\nX-Stream-Protocol-Version: v2.channel.k8s.io, v4.channel.k8s.io\r\n\r\n",
  );
  assert.equal(negotiateProtocol(h, ["v4.channel.k8s.io", "v2.channel.k8s.io"]), "v2.channel.k8s.io");
});

Deno.test("negotiateProtocol answers 400 without a protocol and 403 listing its own without a common one", () => {
  assert.throws(() => negotiateProtocol(head("GET /x HTTP/1.1\r\n\r\n"), ["a"]), (e) => {
    return e instanceof HttpError && e.status === 400 &&
      /X-Stream-Protocol-Version is required/.test(e.message);
  });
  const only1 = head("GET /x HTTP/1.1\r\nX-Stream-Protocol-Version: channel.k8s.io\r\n\r\n");
  assert.throws(() => negotiateProtocol(only1, ["v4.channel.k8s.io", "v3.channel.k8s.io"]), (e) => {
    return e instanceof HttpError && e.status === 403 &&
      JSON.stringify(e.headers) === JSON.stringify([
          ["X-Accepted-Stream-Protocol-Versions", "v4.channel.k8s.io"],
          ["X-Accepted-Stream-Protocol-Versions", "v3.channel.k8s.io"],
        ]);
  });
});

Deno.test("checkSpdyUpgrade refuses a request that does not ask for SPDY/3.1", () => {
  assert.throws(
    () => checkSpdyUpgrade(head("GET /x HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")),
    (e) => e instanceof HttpError && e.status === 400,
  );
});

Deno.test("parseHead refuses malformed lines, folded headers, bodies and too many headers", () => {
  const status = (text: string) => {
    try {
      head(text);
      return 0;
    } catch (e) {
      return (e as HttpError).status;
    }
  };
  assert.equal(status("GET /x\r\n\r\n"), 400);
  assert.equal(status("GET /x HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n"), 400);
  assert.equal(status("GET /x HTTP/1.1\r\nNo colon\r\n\r\n"), 400);
  assert.equal(status("POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n"), 400);
  assert.equal(status("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
  assert.equal(status(`GET /x HTTP/1.1\r\n${"A: 1\r\n".repeat(21)}\r\n`), 431);
});

Deno.test("readRequestHead returns the bytes after the head for the SPDY session", async () => {
  const [client, server] = await pair();
  try {
    await client.write(enc.encode(goRequest.slice(0, 50)));
    await client.write(new Uint8Array([...enc.encode(goRequest.slice(50)), 0x80, 0x03]));
    const { head, rest } = await readRequestHead(server, limits);
    assert.equal(head.path, "/exec/abc");
    assert.deepEqual([...rest], [0x80, 0x03]);
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("readRequestHead gives up on a head larger than its limit without waiting for its end", async () => {
  const [client, server] = await pair();
  try {
    await client.write(enc.encode("GET /x HTTP/1.1\r\nX-Pad: " + "a".repeat(2000)));
    await assert.rejects(readRequestHead(server, limits), (e) => e instanceof HttpError && e.status === 431);
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("readRequestHead gives up on a client that sends its head too slowly", async () => {
  const [client, server] = await pair();
  try {
    await client.write(enc.encode("GET /x HTTP/1.1\r\n"));
    const started = Date.now();
    await assert.rejects(
      readRequestHead(server, { ...limits, timeoutMs: 200 }),
      (e) => e instanceof HttpError && e.status === 408,
    );
    assert.ok(Date.now() - started < 1500);
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("encodeResponse writes a closing text response with its length", () => {
  const text = new TextDecoder().decode(encodeResponse(404, { body: "Not here\n" }));
  assert.match(text, /^HTTP\/1\.1 404 Not Found\r\n/);
  assert.match(text, /\r\nContent-Length: 9\r\nConnection: close\r\n\r\nNot here\n$/);
});
