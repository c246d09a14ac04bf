import assert from "node:assert/strict";
import { diffUsage, diskUsage } from "./disk_usage.ts";

async function withTree(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-disk-usage-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("diskUsage counts every inode under the folder once, hard links included", async () => {
  await withTree(async (dir) => {
    Deno.mkdirSync(`${dir}/a/b`, { recursive: true });
    Deno.writeFileSync(`${dir}/a/b/file`, new Uint8Array(10_000));
    Deno.linkSync(`${dir}/a/b/file`, `${dir}/a/link`);
    Deno.symlinkSync("b/file", `${dir}/a/sym`);
    const blocks = (path: string) => (Deno.lstatSync(path).blocks ?? 0) * 512;
    const usage = await diskUsage(dir);
    // dir, a, a/b, the file (twice linked), the symlink
    assert.equal(usage.inodes, 5);
    assert.equal(
      usage.size,
      blocks(dir) + blocks(`${dir}/a`) + blocks(`${dir}/a/b`) + blocks(`${dir}/a/b/file`) +
        blocks(`${dir}/a/sym`),
    );
  });
});

Deno.test("diskUsage of a large tree lets timers run while it walks", async () => {
  await withTree(async (dir) => {
    for (let d = 0; d < 40; d++) {
      Deno.mkdirSync(`${dir}/d${d}`);
      for (let f = 0; f < 100; f++) Deno.writeFileSync(`${dir}/d${d}/f${f}`, new Uint8Array(1));
    }
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      const started = performance.now();
      const usage = await diskUsage(dir);
      const ms = performance.now() - started;
      assert.equal(usage.inodes, 1 + 40 + 40 * 100);
      // A walk longer than a few slices must have let the interval fire in between.
      if (ms > 20) assert.ok(ticks > 0, `no timer ran during a ${ms.toFixed(0)} ms walk`);
    } finally {
      clearInterval(timer);
    }
  });
});

Deno.test("diffUsage counts only what the folder adds or changes over its base", async () => {
  await withTree(async (dir) => {
    Deno.mkdirSync(`${dir}/base/same`, { recursive: true });
    Deno.writeFileSync(`${dir}/base/same/kept`, new Uint8Array(100));
    // The upper folder shares `kept` (same inode, as a btrfs snapshot keeps it) and adds `new`.
    Deno.mkdirSync(`${dir}/upper/same`, { recursive: true });
    Deno.linkSync(`${dir}/base/same/kept`, `${dir}/upper/same/kept`);
    Deno.writeFileSync(`${dir}/upper/same/new`, new Uint8Array(5000));
    const usage = await diffUsage(`${dir}/base`, `${dir}/upper`);
    // upper, upper/same (other inodes than base's folders) and `new`; not `kept`
    assert.equal(usage.inodes, 3);
  });
});
