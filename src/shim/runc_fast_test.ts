import assert from "node:assert/strict";
import { BerthError } from "../base/errors.ts";
import { BackgroundDeletes, isRunc, startByExecFifo } from "./runc_fast.ts";
import { Runc } from "./runc.ts";
import { pidAlive, withContainer } from "./testing.ts";

/** Settles once `pid` is gone or a zombie (nothing reaps runc's orphans in a test). */
async function gone(pid: number): Promise<void> {
  while (await pidAlive(pid)) await new Promise((r) => setTimeout(r, 10));
}

/** Settles once `pid` no longer exists at all (pid 1 reaps runc's orphans here), within 10 s. */
async function reaped(pid: number): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (!(await Deno.stat(`/proc/${pid}`).then(() => true, () => false))) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`Process ${pid} was not reaped within 10 s`);
}

Deno.test("startByExecFifo() starts a created runc container as runc start does", async () => {
  await withContainer("runc", async ({ runc, dir, bundle, id }) => {
    await runc.create(id, { bundle, pidFile: `${dir}/init.pid` });
    const pid = Number(await Deno.readTextFile(`${dir}/init.pid`));
    assert.equal(await startByExecFifo(runc, id, { exited: gone(pid) }), true);
    assert.equal((await runc.state(id)).status, "running");
    assert.equal(await Deno.stat(`${dir}/state/${id}/exec.fifo`).catch(() => undefined), undefined);
    // The process is the image's, no longer runc init.
    const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    assert.equal(cmdline.split("\0")[0], "/bin/busybox");

    // Started: no FIFO any more, so the fast path steps aside for `runc start` and its own message.
    assert.equal(await startByExecFifo(runc, id, { exited: gone(pid) }), false);
  });
});

Deno.test("startByExecFifo() reports an init that died before start", async () => {
  await withContainer("runc", async ({ runc, dir, bundle, id }) => {
    await runc.create(id, { bundle, pidFile: `${dir}/init.pid` });
    const pid = Number(await Deno.readTextFile(`${dir}/init.pid`));
    await runc.kill(id, "SIGKILL");
    const err = await startByExecFifo(runc, id, { exited: gone(pid), timeoutMs: 5_000 }).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(err instanceof BerthError, String(err));
    assert.equal(err.kind, "failed_precondition");
    assert.match(err.message, /already dead/);
  });
});

Deno.test("BackgroundDeletes removes stopped containers, and the same id can be created once done", async () => {
  await withContainer("runc", async ({ runc, dir, bundle, id }) => {
    const errors: string[] = [];
    const deletes = new BackgroundDeletes((what, err) => errors.push(`${what}: ${(err as Error).message}`));
    await runc.create(id, { bundle, pidFile: `${dir}/init.pid` });
    const pid = Number(await Deno.readTextFile(`${dir}/init.pid`));
    await runc.kill(id, "SIGKILL");
    // Reaped, not only dead: a zombie still holds its cgroup v2 folder (the shim's reaper has reaped the
    // init before any Delete; here pid 1 does it).
    await reaped(pid);
    const state = JSON.parse(await Deno.readTextFile(`${dir}/state/${id}/state.json`));
    const cgroups = Object.values(state.cgroup_paths as Record<string, string>);
    assert.ok(cgroups.length > 0);
    deletes.delete(runc, id);
    // The cgroups are gone before delete() returns; the rest of runc's state follows.
    for (const cg of cgroups) assert.equal(await Deno.stat(cg).then(() => cg, () => undefined), undefined);
    await deletes.done(runc, id);
    assert.equal((await runc.list()).some((c) => c.id === id), false);
    await runc.create(id, { bundle });
    assert.equal((await runc.state(id)).status, "created");

    // A failure is reported, not thrown: the caller answered long ago.
    deletes.delete(runc, "no-such-container");
    await deletes.settle();
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /no-such-container/);
  });
});

Deno.test("isRunc() takes the fast paths for runc only", () => {
  assert.equal(isRunc(new Runc()), true);
  assert.equal(isRunc(new Runc({ binary: "/usr/sbin/runc" })), true);
  assert.equal(isRunc(new Runc({ binary: "crun" })), false);
});
