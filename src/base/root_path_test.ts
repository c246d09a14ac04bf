import assert from "node:assert/strict";
import { containerPathOf, resolveInRoot } from "./root_path.ts";

async function hostileRoot(): Promise<{ root: string; outside: string; done: () => Promise<void> }> {
  const top = await Deno.makeTempDir({ prefix: "berth-rootpath-" });
  const root = `${top}/root`;
  const outside = `${top}/outside`;
  await Deno.mkdir(`${root}/etc`, { recursive: true });
  await Deno.mkdir(`${root}/data/sub`, { recursive: true });
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${outside}/secret`, "host");
  await Deno.writeTextFile(`${root}/etc/passwd`, "container");
  await Deno.symlink("/etc", `${root}/abs`); // absolute: means the container's /etc
  await Deno.symlink("../../../outside", `${root}/data/up`); // climbs above the root
  await Deno.symlink(outside, `${root}/hostabs`); // the host's absolute path: inside the root it is missing
  await Deno.symlink("sub", `${root}/data/rel`);
  await Deno.symlink("loop2", `${root}/loop1`);
  await Deno.symlink("loop1", `${root}/loop2`);
  await Deno.symlink("/../../..", `${root}/dotdot`);
  return { root, outside, done: () => Deno.remove(top, { recursive: true }) };
}

Deno.test("resolveInRoot() follows an absolute symlink to the container's own folder", async () => {
  const r = await hostileRoot();
  try {
    assert.equal(resolveInRoot(r.root, "/abs/passwd"), `${r.root}/etc/passwd`);
    assert.equal(resolveInRoot(r.root, "abs", { followLast: true }), `${r.root}/etc`);
    assert.equal(resolveInRoot(r.root, "abs"), `${r.root}/abs`);
  } finally {
    await r.done();
  }
});

Deno.test("resolveInRoot() keeps `..` and relative symlinks that climb out inside the root", async () => {
  const r = await hostileRoot();
  try {
    assert.equal(resolveInRoot(r.root, "/data/up/secret"), `${r.root}/outside/secret`);
    assert.equal(resolveInRoot(r.root, "/../../outside/secret"), `${r.root}/outside/secret`);
    assert.equal(resolveInRoot(r.root, "/dotdot", { followLast: true }), r.root);
    assert.equal(resolveInRoot(r.root, "/dotdot/etc/passwd"), `${r.root}/etc/passwd`);
    assert.equal(resolveInRoot(r.root, "/hostabs/secret"), `${r.root}${r.outside}/secret`);
    for (const p of ["/data/up/secret", "/hostabs/secret", "/../outside/secret"]) {
      assert.ok(resolveInRoot(r.root, p).startsWith(`${r.root}/`), p);
    }
  } finally {
    await r.done();
  }
});

Deno.test("resolveInRoot() resolves relative links, missing tails and refuses loops", async () => {
  const r = await hostileRoot();
  try {
    assert.equal(resolveInRoot(r.root, "/data/rel/new/file"), `${r.root}/data/sub/new/file`);
    assert.equal(resolveInRoot(r.root, "/data/missing/../sub"), `${r.root}/data/sub`);
    assert.equal(resolveInRoot(r.root, "/etc/passwd/x"), `${r.root}/etc/passwd/x`);
    assert.equal(resolveInRoot(r.root, "/"), r.root);
    assert.throws(() => resolveInRoot(r.root, "/loop1/x"), /too many levels of symbolic links/);
    assert.equal(containerPathOf(r.root, `${r.root}/etc/passwd`), "/etc/passwd");
    assert.equal(containerPathOf(r.root, r.root), "/");
  } finally {
    await r.done();
  }
});
