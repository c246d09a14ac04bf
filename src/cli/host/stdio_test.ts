import assert from "node:assert/strict";
import { fdSyscalls, O_NONBLOCK, O_WRONLY } from "../../../ffi/fd.ts";
import { createFifoSet, holdFifos } from "./stdio.ts";

/** Whether a writer could open `path` now: a FIFO without a reader refuses a non-blocking writer (ENXIO). */
function hasReader(path: string): boolean {
  try {
    fdSyscalls().close(fdSyscalls().open(path, O_WRONLY | O_NONBLOCK));
    return true;
  } catch {
    return false;
  }
}

Deno.test("holdFifos() keeps a reader on each FIFO until it is released", async () => {
  const root = await Deno.makeTempDir({ prefix: "berth-hold-" });
  try {
    const set = await createFifoSet("c1", { terminal: false, root });
    assert.equal(hasReader(set.stdout), false);
    const release = holdFifos([set.stdout, set.stderr]);
    assert.equal(hasReader(set.stdout), true);
    assert.equal(hasReader(set.stderr), true);
    release();
    release();
    assert.equal(hasReader(set.stdout), false);
    assert.equal(hasReader(set.stderr), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("holdFifos() closes what it opened when a later FIFO cannot be opened", async () => {
  const root = await Deno.makeTempDir({ prefix: "berth-hold-" });
  try {
    const set = await createFifoSet("c1", { terminal: false, root });
    assert.throws(() => holdFifos([set.stdout, `${set.dir}/missing`]));
    assert.equal(hasReader(set.stdout), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
