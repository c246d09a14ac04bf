import assert from "node:assert/strict";
import { benchConflist, freeOctets, iptablesUndo, leasedAddress, taskPids } from "./docker_host.ts";

Deno.test("freeOctets() skips the 10.232.N subnets a route mentions", () => {
  const routes = "10.232.10.0/24 dev x\n10.232.12.0/24 dev y\n";
  assert.deepEqual(freeOctets(routes, 3), [11, 13, 14]);
  assert.throws(() => freeOctets("", 500), /No 500 free subnets/);
});

Deno.test("benchConflist() is Berth's bridge chain on the given bridge, subnet and lease folder", () => {
  const conf = JSON.parse(
    benchConflist({ name: "bridge", bridge: "bbd123456", subnet: "10.232.11.0/24", ipamDir: "/tmp/x/ipam" }),
  );
  assert.equal(conf.name, "bridge");
  assert.deepEqual(conf.plugins.map((p: { type: string }) => p.type), [
    "bridge",
    "portmap",
    "firewall",
    "tuning",
  ]);
  assert.equal(conf.plugins[0].bridge, "bbd123456");
  assert.equal(conf.plugins[0].ipam.dataDir, "/tmp/x/ipam");
  assert.deepEqual(conf.plugins[0].ipam.ranges, [[{ subnet: "10.232.11.0/24" }]]);
});

Deno.test("leasedAddress() finds the address whose lease names the container, skipping host-local's own files", () => {
  const leases = [
    { name: "lock", text: "" },
    { name: "last_reserved_ip.0", text: "10.232.11.3" },
    { name: "10.232.11.2", text: "ns-web1\r\neth0" },
    { name: "10.232.11.3", text: "ns-web2\r\neth0" },
  ];
  assert.equal(leasedAddress(leases, "ns-web2"), "10.232.11.3");
  assert.equal(leasedAddress(leases, "ns-web"), undefined);
});

Deno.test("taskPids() reads ctr tasks ls rows as id → pid", () => {
  const text = "TASK    PID      STATUS    \nweb1    4242     RUNNING\nweb2    0        STOPPED\n";
  assert.deepEqual([...taskPids(text)], [["web1", 4242], ["web2", 0]]);
});

const BEFORE = [
  "*filter",
  ":FORWARD ACCEPT [0:0]",
  ":CNI-FORWARD - [0:0]",
  "-A FORWARD -j CNI-FORWARD",
  '-A CNI-FORWARD -d 10.4.0.2/32 -m comment --comment "name: bridge id: other-c1" -j ACCEPT',
  "COMMIT",
  "*nat",
  ":POSTROUTING ACCEPT [0:0]",
  "COMMIT",
].join("\n");

const NOW = [
  "*filter",
  ":FORWARD ACCEPT [0:0]",
  ":CNI-FORWARD - [0:0]",
  ":CNI-ISOLATION-STAGE-1 - [0:0]",
  "-A FORWARD -j CNI-FORWARD",
  "-A FORWARD -j CNI-ISOLATION-STAGE-1",
  '-A CNI-FORWARD -d 10.4.0.2/32 -m comment --comment "name: bridge id: other-c1" -j ACCEPT',
  '-A CNI-FORWARD -d 10.232.11.2/32 -m comment --comment "name: n id: bench-7-web1" -j ACCEPT',
  "-A CNI-ISOLATION-STAGE-1 -i bcd1 ! -o bcd1 -j DROP",
  "COMMIT",
  "*nat",
  ":POSTROUTING ACCEPT [0:0]",
  ":CNI-abc - [0:0]",
  ":CNI-HOSTPORT-DNAT - [0:0]",
  '-A POSTROUTING -s 10.232.11.2/32 -m comment --comment "name: n id: bench-7-web1" -j CNI-abc',
  "-A POSTROUTING -j CNI-HOSTPORT-DNAT",
  '-A CNI-abc -d 10.232.11.0/24 -m comment --comment "name: n id: bench-7-web1" -j ACCEPT',
  '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: x id: someone-else" -j CNI-DN-1',
  "COMMIT",
].join("\n");

Deno.test("iptablesUndo() deletes the run's rules and the CNI chains it left empty, and nothing that was there", () => {
  const scripts = iptablesUndo(BEFORE, NOW, /bench-7-|bcd1/);
  assert.equal(
    scripts.get("filter"),
    [
      "*filter",
      '-D CNI-FORWARD -d 10.232.11.2/32 -m comment --comment "name: n id: bench-7-web1" -j ACCEPT',
      "-D FORWARD -j CNI-ISOLATION-STAGE-1",
      "-F CNI-ISOLATION-STAGE-1",
      "-X CNI-ISOLATION-STAGE-1",
      "COMMIT",
      "",
    ].join("\n"),
  );
  // CNI-abc goes with its jump; CNI-HOSTPORT-DNAT is new too but holds someone else's mapping.
  assert.equal(
    scripts.get("nat"),
    [
      "*nat",
      '-D POSTROUTING -s 10.232.11.2/32 -m comment --comment "name: n id: bench-7-web1" -j CNI-abc',
      "-F CNI-abc",
      "-X CNI-abc",
      "COMMIT",
      "",
    ].join("\n"),
  );
  assert.equal(iptablesUndo(NOW, NOW, /bench-7-/).size, 0);
});
