import assert from "node:assert/strict";
import { familiarString, parseNormalizedName, parseReference } from "./reference.ts";
import { BerthError } from "../base/errors.ts";

const D = "sha256:" + "ab".repeat(32);

Deno.test("parseReference() normalises official images to docker.io/library with the latest tag", () => {
  const r = parseReference("busybox");
  assert.equal(r.toString(), "docker.io/library/busybox:latest");
  assert.equal(r.domain, "docker.io");
  assert.equal(r.path, "library/busybox");
  assert.equal(r.name, "docker.io/library/busybox");
  assert.equal(r.tag, "latest");
  assert.equal(r.digest, undefined);
});

Deno.test("parseReference() keeps user repositories on docker.io without library/", () => {
  assert.equal(parseReference("user/app:1.0").toString(), "docker.io/user/app:1.0");
  assert.equal(parseReference("index.docker.io/user/app").toString(), "docker.io/user/app:latest");
  assert.equal(parseReference("docker.io/busybox").toString(), "docker.io/library/busybox:latest");
});

Deno.test("parseReference() takes host:port as the registry and the last colon as the tag", () => {
  const r = parseReference("127.0.0.1:5000/x/y:1");
  assert.equal(r.domain, "127.0.0.1:5000");
  assert.equal(r.path, "x/y");
  assert.equal(r.tag, "1");
  assert.equal(parseReference("localhost/app").domain, "localhost");
  assert.equal(parseReference("localhost:5000/app").toString(), "localhost:5000/app:latest");
  assert.equal(parseReference("[::1]:5000/app:2").domain, "[::1]:5000");
  assert.equal(parseReference("ghcr.io/org/team/app").path, "org/team/app");
});

Deno.test("parseReference() keeps a digest and adds no default tag to it", () => {
  const r = parseReference(`busybox@${D}`);
  assert.equal(r.digest, D);
  assert.equal(r.tag, undefined);
  assert.equal(r.toString(), `docker.io/library/busybox@${D}`);
  const both = parseReference(`127.0.0.1:5000/x:1@${D}`);
  assert.equal(both.tag, "1");
  assert.equal(both.digest, D);
});

Deno.test("parseNormalizedName() adds no tag", () => {
  assert.equal(parseNormalizedName("busybox").toString(), "docker.io/library/busybox");
});

Deno.test("familiarString() shortens docker.io references like docker does", () => {
  assert.equal(familiarString(parseReference("busybox")), "busybox:latest");
  assert.equal(familiarString(parseReference("user/app:1")), "user/app:1");
  assert.equal(familiarString(parseReference("127.0.0.1:5000/x:1")), "127.0.0.1:5000/x:1");
});

Deno.test("parseReference() rejects malformed references with invalidArgument naming them", () => {
  const cases: [string, RegExp][] = [
    ["", /empty/],
    ["Busybox", /lowercase/],
    ["127.0.0.1:5000/App", /lowercase/],
    ["busybox:", /bad tag/],
    ["busybox:bad tag", /whitespace/],
    ["busybox@sha256:abc", /bad digest/],
    [`busybox@sha256:${"AB".repeat(32)}`, /lower-case hex/],
    ["a/b//c", /bad repository name/],
    ["-x", /bad repository name/],
    ["ab".repeat(32), /image id/],
    [`host.io/${"a".repeat(250)}`, /longer than 255/],
    ["host_x.io:5000/a", /bad registry host/],
  ];
  for (const [ref, why] of cases) {
    assert.throws(() => parseReference(ref), (err: unknown) => {
      assert.ok(err instanceof BerthError, `${ref}: ${err}`);
      assert.equal(err.kind, "invalid_argument");
      assert.ok(err.message.startsWith(`Invalid reference "${ref}"`), err.message);
      assert.match(err.message, why);
      return true;
    });
  }
});
