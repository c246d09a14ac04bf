import assert from "node:assert/strict";
import { parseBytes, parseEnvFile, parsePublish, parseRestart, parseVolume, restartLabel } from "./flags.ts";

Deno.test("parsePublish() reads docker's -p forms", () => {
  assert.deepEqual(parsePublish("18080:80"), [
    { hostIP: "0.0.0.0", hostPort: 18080, containerPort: 80, protocol: "tcp" },
  ]);
  assert.deepEqual(parsePublish("127.0.0.1:53:53/udp"), [
    { hostIP: "127.0.0.1", hostPort: 53, containerPort: 53, protocol: "udp" },
  ]);
  assert.deepEqual(parsePublish("80"), [{
    hostIP: "0.0.0.0",
    hostPort: 0,
    containerPort: 80,
    protocol: "tcp",
  }]);
  assert.deepEqual(parsePublish("8000-8001:80-81").map((p) => [p.hostPort, p.containerPort]), [
    [8000, 80],
    [8001, 81],
  ]);
  assert.deepEqual(parsePublish("[::1]:8080:80")[0]?.hostIP, "::1");
  for (const bad of ["", "x:80", "80/sctp", "70000:80", "1-3:80-81", "1.2.3:80:80", "a:b:c:d"]) {
    assert.throws(() => parsePublish(bad), /Invalid/, bad);
  }
});

Deno.test("parseVolume() tells binds, named and anonymous volumes apart", () => {
  assert.deepEqual(parseVolume("/srv:/data:ro"), {
    kind: "bind",
    source: "/srv",
    target: "/data",
    readOnly: true,
  });
  assert.deepEqual(parseVolume("./x/../y:/data", "/home/u"), {
    kind: "bind",
    source: "/home/u/y",
    target: "/data",
    readOnly: false,
  });
  assert.deepEqual(parseVolume("db:/var/lib/db"), {
    kind: "volume",
    name: "db",
    target: "/var/lib/db",
    readOnly: false,
  });
  assert.deepEqual(parseVolume("/cache"), { kind: "anonymous", target: "/cache", readOnly: false });
  for (const bad of ["db:rel", "rel", "db:/x:zz", "b@d:/x", "a:b:c:d"]) {
    assert.throws(() => parseVolume(bad), bad);
  }
});

Deno.test("parseRestart() takes docker's policies and gives containerd's label", () => {
  assert.equal(restartLabel(parseRestart("always")), "always");
  assert.equal(restartLabel(parseRestart("on-failure:3")), "on-failure:3");
  assert.equal(restartLabel(parseRestart("on-failure")), "on-failure");
  assert.equal(restartLabel(parseRestart("unless-stopped")), "unless-stopped");
  for (const bad of ["sometimes", "always:2", "on-failure:x", "on-failure:-1"]) {
    assert.throws(() => parseRestart(bad), /Invalid --restart/);
  }
});

Deno.test("parseBytes() and parseEnvFile() read docker's forms", () => {
  assert.equal(parseBytes("--memory", "512m"), 512 * 1024 * 1024);
  assert.equal(parseBytes("--memory", "1g"), 1024 ** 3);
  assert.equal(parseBytes("--memory", "1024"), 1024);
  assert.throws(() => parseBytes("--memory", "lots"), /Invalid --memory/);
  const env = parseEnvFile("# c\nA=1\n\nB\nC=x=y\n", (k) => (k === "B" ? "from-env" : undefined));
  assert.deepEqual(env, ["A=1", "B=from-env", "C=x=y"]);
});
