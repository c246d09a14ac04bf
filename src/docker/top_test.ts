import assert from "node:assert/strict";
import { cpuTimeText, parsePasswd, startText, topRow, topRows, ttyText } from "./top.ts";

Deno.test("topRow() writes a process as ps -ef does", () => {
  const boot = new Date(2025, 2, 1, 8, 0, 0);
  const now = new Date(2025, 2, 1, 10, 0, 0);
  // Started 3600 s after boot (360000 ticks), 72 s of CPU (7200 ticks) in one hour: 2 %.
  const stat = "4242 (sleep) S 4200 4242 4242 34816 0 0 0 0 0 0 5000 2200 0 0 20 0 1 0 360000 1 1";
  const row = topRow(
    {
      pid: 4242,
      stat,
      status: "Name:\tsleep\nUid:\t1000\t1000\t1000\t1000\n",
      cmdline: "sleep\u00001000\u0000",
    },
    { now, boot, users: parsePasswd("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/a:/bin/sh\n") },
  );
  assert.deepEqual(row, ["alice", "4242", "4200", "2", "09:00", "pts/0", "00:01:12", "sleep 1000"]);
  const zombie = topRow(
    {
      pid: 7,
      stat: "7 (my (odd) name) Z 1 0 0 0 0 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0",
      status: "",
      cmdline: "",
    },
    { now, boot, users: new Map() },
  );
  assert.equal(zombie[0], "0");
  assert.equal(zombie[5], "?");
  assert.equal(zombie[7], "[my (odd) name]");
});

Deno.test("ps's STIME, TIME and TTY texts", () => {
  const now = new Date(2025, 5, 15, 12, 0);
  assert.equal(startText(new Date(2025, 5, 15, 9, 5), now), "09:05");
  assert.equal(startText(new Date(2025, 0, 2, 9, 5), now), "Jan02");
  assert.equal(startText(new Date(2023, 0, 2), now), "2023");
  assert.equal(cpuTimeText(0), "00:00:00");
  assert.equal(cpuTimeText(3 * 86400 + 3661.9), "3-01:01:01");
  assert.equal(ttyText(0), "?");
  assert.equal(ttyText((136 << 8) | 3), "pts/3");
  assert.equal(ttyText((4 << 8) | 1), "tty1");
});

Deno.test("topRows() reads this test's own process from /proc", () => {
  const [row] = topRows([Deno.pid]);
  assert.ok(row);
  assert.equal(row[1], String(Deno.pid));
  assert.match(row[7]!, /deno/);
  assert.deepEqual(topRows([2 ** 30]), []);
});
