import assert from "node:assert/strict";
import { parseSmaps, parseSmapsRollup, processTree, treeMemory } from "./procfs.ts";

const SAMPLE = `00400000-7ffd7cc11000 ---p 00000000 00:00 0                              [rollup]
Rss:               38336 kB
Pss:               37420 kB
Pss_Dirty:          8232 kB
Pss_Anon:           8232 kB
`;

Deno.test("parseSmapsRollup() reads Rss and Pss, not their Pss_* neighbours", () => {
  assert.deepEqual(parseSmapsRollup(SAMPLE), { rssKiB: 38336, pssKiB: 37420 });
});

Deno.test("parseSmapsRollup() names the missing field", () => {
  assert.throws(() => parseSmapsRollup("Rss: 1 kB\n"), /Cannot read Pss from smaps_rollup/);
});

Deno.test("parseSmaps() reads each mapping's name, Size and Rss, anonymous ones named empty", () => {
  const text = `55d0c9f3e000-55d0cb4c4000 rw-p 00000000 00:00 0                          [heap]
Size:              22040 kB
KernelPageSize:        4 kB
Rss:               11432 kB
Pss:               11432 kB
7f3a8c000000-7f3a8c021000 rw-p 00000000 00:00 0
Size:                132 kB
Rss:                  12 kB
7f3a90000000-7f3a90200000 r-xp 00000000 fe:01 2203759                    /usr/bin/deno
Size:               2048 kB
Rss:                1024 kB
`;
  assert.deepEqual(parseSmaps(text), [
    { name: "[heap]", sizeKiB: 22040, rssKiB: 11432 },
    { name: "", sizeKiB: 132, rssKiB: 12 },
    { name: "/usr/bin/deno", sizeKiB: 2048, rssKiB: 1024 },
  ]);
});

Deno.test("treeMemory() counts a child process started by the measured process", async () => {
  // sh starts sleep as its child and waits, so the tree is [sh, sleep] while we measure.
  const child = new Deno.Command("/bin/sh", { args: ["-c", "sleep 30; true"], stdout: "null" }).spawn();
  try {
    let tree: number[] = [];
    for (let i = 0; i < 200 && tree.length < 2; i++) {
      tree = await processTree(child.pid);
      if (tree.length < 2) await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(tree.length, 2, `expected sh and its sleep child, got ${tree.join(",")}`);
    const mem = await treeMemory(child.pid);
    assert.deepEqual(mem.pids, tree);
    const own = parseSmapsRollup(await Deno.readTextFile(`/proc/${child.pid}/smaps_rollup`));
    assert.ok(mem.rssKiB > own.rssKiB, "tree RSS must exceed the parent's own RSS");
  } finally {
    for (const p of (await processTree(child.pid)).reverse()) {
      try {
        Deno.kill(p, "SIGKILL");
      } catch { /* already gone */ }
    }
    await child.status;
  }
});
