import assert from "node:assert/strict";
import { isCidr, parseErrorResult, parseResult, resultAsVersion } from "./result.ts";

const v040 = {
  cniVersion: "0.4.0",
  interfaces: [{ name: "cni0", mac: "aa:bb:cc:dd:ee:ff" }, {
    name: "eth0",
    mac: "02:42:ac:11:00:02",
    sandbox: "/run/netns/a",
  }],
  ips: [
    { version: "4", interface: 1, address: "10.1.0.5/24", gateway: "10.1.0.1" },
    { version: "6", interface: 1, address: "fd00::5/64" },
  ],
  routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }],
  dns: { nameservers: ["10.1.0.1"], search: ["svc.local"] },
};

Deno.test("parseResult() reads a 0.4.0 result into the 1.0.0 shape", () => {
  const r = parseResult(JSON.stringify(v040), "0.4.0");
  assert.equal(r.cniVersion, "0.4.0");
  assert.deepEqual(r.ips, [
    { address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 1 },
    { address: "fd00::5/64", interface: 1 },
  ]);
  assert.deepEqual(r.interfaces[1], { name: "eth0", mac: "02:42:ac:11:00:02", sandbox: "/run/netns/a" });
  assert.deepEqual(r.dns, { nameservers: ["10.1.0.1"], search: ["svc.local"] });
});

Deno.test("parseResult() takes the config's version when the plugin names none, as libcni does", () => {
  const r = parseResult(JSON.stringify({ ips: [{ address: "10.0.0.2/8" }] }), "0.3.1");
  assert.equal(r.cniVersion, "0.3.1");
  assert.deepEqual(r.interfaces, []);
  assert.deepEqual(r.routes, []);
});

Deno.test("resultAsVersion() adds the ip version for 0.3.x/0.4.0 and drops it for 1.0.0", () => {
  const r = parseResult(JSON.stringify(v040), "0.4.0");
  const old = resultAsVersion(r, "0.3.1") as { cniVersion: string; ips: { version: string }[] };
  assert.equal(old.cniVersion, "0.3.1");
  assert.deepEqual(old.ips.map((ip) => ip.version), ["4", "6"]);
  const now = resultAsVersion({ ...r, interfaces: [{ name: "eth0", mtu: 1400 }] }, "1.0.0") as {
    ips: Record<string, unknown>[];
    interfaces: Record<string, unknown>[];
  };
  assert.ok(now.ips.every((ip) => !("version" in ip)));
  assert.deepEqual(now.interfaces, [{ name: "eth0", mtu: 1400 }]);
  const back = resultAsVersion({ ...r, interfaces: [{ name: "eth0", mtu: 1400 }] }, "0.4.0") as {
    interfaces: Record<string, unknown>[];
  };
  assert.deepEqual(back.interfaces, [{ name: "eth0" }], "0.4.0 interfaces have no mtu");
});

Deno.test("parseResult() rejects what a plugin must not return", () => {
  const bad: [unknown, RegExp][] = [
    [[], /not a JSON object/],
    [{ cniVersion: "0.2.0", ip4: { ip: "10.0.0.2/8" } }, /0\.2\.0 \(ip4\/ip6\) are not supported/],
    [
      { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2" }] },
      /ips\[0\]\.address "10\.0\.0\.2" is not an address\/prefix/,
    ],
    [{ cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/8", interface: 0 }] }, /interface 0 is out of range/],
    [{ cniVersion: "1.0.0", interfaces: [{ mac: "x" }] }, /interfaces\[0\] has no name/],
    [{ cniVersion: "1.0.0", routes: [{ dst: "default" }] }, /routes\[0\]\.dst "default"/],
    [{ cniVersion: "1.0.0", dns: { nameservers: "1.1.1.1" } }, /dns\.nameservers is not a list/],
  ];
  for (const [value, re] of bad) assert.throws(() => parseResult(JSON.stringify(value), "1.0.0"), re);
  assert.throws(() => parseResult("garbage", "1.0.0"), /the output is not JSON/);
});

Deno.test("parseErrorResult() reads code, msg and details, and nothing from a non-error", () => {
  assert.deepEqual(
    parseErrorResult('{"cniVersion":"1.0.0","code":7,"msg":"Invalid Configuration","details":"too small"}'),
    {
      code: 7,
      msg: "Invalid Configuration",
      details: "too small",
    },
  );
  assert.deepEqual(parseErrorResult('{"code":11,"msg":"try again"}'), { code: 11, msg: "try again" });
  assert.equal(parseErrorResult('{"cniVersion":"1.0.0"}'), undefined);
  assert.equal(parseErrorResult("oops"), undefined);
});

Deno.test("isCidr() accepts IPv4 and IPv6 with a prefix in range and nothing else", () => {
  for (const s of ["10.0.0.1/24", "0.0.0.0/0", "fd00::1/64", "::/0"]) assert.ok(isCidr(s), s);
  for (const s of ["10.0.0.1", "10.0.0.1/33", "fd00::1/129", "x/8", "10.0.0.1/-1", "10.0.0.256/8"]) {
    assert.ok(!isCidr(s), s);
  }
});
