import assert from "node:assert/strict";
import type { HeaderField } from "./hpack.ts";
import { isConnectionSpecific, malformed } from "./header_fields.ts";

const request: HeaderField[] = [[":method", "POST"], [":scheme", "http"], [":path", "/a/b"], [
  ":authority",
  "x",
]];

Deno.test("malformed accepts well-formed requests, responses and trailers", () => {
  assert.equal(
    malformed([...request, ["content-type", "application/grpc"], ["te", "trailers"]], "request"),
    undefined,
  );
  assert.equal(malformed([[":method", "CONNECT"], [":authority", "x:1"]], "request"), undefined);
  assert.equal(malformed([[":status", "200"], ["grpc-status", "0"]], "response"), undefined);
  assert.equal(malformed([["grpc-status", "0"], ["x-bin", "a b\tc"]], "trailers"), undefined);
});

Deno.test("malformed names what makes a header list malformed (RFC 9113 §8.2, §8.3)", () => {
  const cases: [HeaderField[], "request" | "response" | "trailers", RegExp][] = [
    [[...request, ["X-Up", "1"]], "request", /Field name "X-Up" has an invalid character/],
    [[...request, ["a\0b", "1"]], "request", /invalid character/],
    [[...request, ["a b", "1"]], "request", /invalid character/],
    [[...request, ["a:b", "1"]], "request", /invalid character/],
    [[...request, ["", "1"]], "request", /Empty field name/],
    [[...request, ["a", "1\r\n2"]], "request", /Value of field a has an invalid character/],
    [[...request, ["a", "1\u00002"]], "request", /Value of field a/],
    [[...request, [":path", "/c"]], "request", /Pseudo-header :path appears twice/],
    [[["a", "1"], ...request], "request", /Pseudo-header :method follows a regular field/],
    [[...request, [":status", "200"]], "request", /Pseudo-header :status is not allowed in a request/],
    [[...request, [":protocol", "ws"]], "request", /Pseudo-header :protocol is not allowed/],
    [[...request, ["connection", "close"]], "request", /Connection-specific field connection/],
    [[...request, ["upgrade", "h2c"]], "request", /Connection-specific field upgrade/],
    [[...request, ["te", "gzip"]], "request", /Field te is "gzip"/],
    [request.filter(([n]) => n !== ":method"), "request", /Request without :method/],
    [request.filter(([n]) => n !== ":scheme"), "request", /Request without :scheme/],
    [request.filter(([n]) => n !== ":path"), "request", /Request without :path/],
    [[...request.filter(([n]) => n !== ":path"), [":path", ""]], "request", /:path is empty/],
    [[[":method", "CONNECT"], [":authority", "x"], [":path", "/"]], "request", /CONNECT request/],
    [[["grpc-status", "0"]], "response", /Response without :status/],
    [[[":status", "200"], [":path", "/"]], "response", /Pseudo-header :path is not allowed in a response/],
    [[[":status", "200"], [":status", "204"]], "response", /appears twice/],
    [[[":status", "200"], ["grpc-status", "0"]], "trailers", /Pseudo-header :status in trailers/],
  ];
  for (const [fields, kind, why] of cases) assert.match(malformed(fields, kind) ?? "well-formed", why);
});

Deno.test("isConnectionSpecific names the fields HTTP/2 forbids, not te", () => {
  for (const name of ["connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade"]) {
    assert.equal(isConnectionSpecific(name), true, name);
  }
  assert.equal(isConnectionSpecific("te"), false);
  assert.equal(isConnectionSpecific("content-type"), false);
});
