import assert from "node:assert/strict";
import { isIP } from "node:net";
import { ipFamily } from "./ip.ts";

const CASES = [
  "",
  "1.2.3.4",
  "0.0.0.0",
  "255.255.255.255",
  "256.1.1.1",
  "01.2.3.4",
  "1.2.3",
  "1.2.3.4.5",
  "1.2.3.4/24",
  "10.88.0.1",
  " 1.2.3.4",
  "::",
  "::1",
  "1::",
  "fe80::1",
  "fe80::1%eth0",
  "fe80::1%",
  "fe80::1%et h0",
  "2001:db8::ff00:42:8329",
  "2001:0db8:0000:0000:0000:ff00:0042:8329",
  "1:2:3:4:5:6:7:8",
  "1:2:3:4:5:6:7:8:9",
  "1:2:3:4:5:6:7",
  "1:2:3:4:5:6:7::",
  "::2:3:4:5:6:7:8",
  "1::2::3",
  "1:::2",
  ":1::2",
  "1::2:",
  "::ffff:1.2.3.4",
  "::ffff:1.2.3",
  "1:2:3:4:5:6:1.2.3.4",
  "1:2:3:4:5:6:7:1.2.3.4",
  "1.2.3.4::",
  "::1.2.3.4:5",
  "12345::",
  "g::1",
  "FE80::ABCD",
  "::%1",
  "localhost",
];

Deno.test("ipFamily() answers as node:net's isIP()", () => {
  for (const s of CASES) assert.equal(ipFamily(s), isIP(s), JSON.stringify(s));
});

Deno.test("ipFamily() answers as node:net's isIP() for random addresses and near misses", () => {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(Math.random() * xs.length)]!;
  const parts = [
    "",
    "0",
    "1",
    "ff",
    "ffff",
    "fffff",
    "g",
    "255",
    "256",
    "01",
    "1.2.3.4",
    "::",
    ":",
    "%z",
    ".",
  ];
  for (let i = 0; i < 5000; i++) {
    const n = 1 + Math.floor(Math.random() * 9);
    const s = Array.from({ length: n }, () => pick(parts)).join(pick([":", ".", "::", ""]));
    assert.equal(ipFamily(s), isIP(s), JSON.stringify(s));
  }
});
