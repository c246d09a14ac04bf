import assert from "node:assert/strict";
import {
  bindMount,
  decodeSpec,
  encodeSpec,
  generateSpec,
  mergeEnv,
  parseMountFlag,
  type Spec,
  type SpecContext,
  type UserDb,
  withAdditionalGids,
  withAnnotations,
  withArgs,
  withCPUs,
  withCPUShares,
  withDefaultUnixDevices,
  withEnv,
  withEnvFile,
  withHostname,
  withHostNetwork,
  withImageConfig,
  withMemoryLimit,
  withMounts,
  withPidsLimit,
  withProcessCwd,
  withReadonlyRootfs,
  withTTY,
  withUser,
} from "./mod.ts";

const PASSWD = "root:x:0:0:root:/root:/bin/sh\n" +
  "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" +
  "app:x:1000:1001:app:/home/app:/bin/sh\n";
const GROUP = "root:x:0:\nwheel:x:10:app,root\ndocker:x:999:app\nappgrp:x:1001:\nnogroup:x:65534:\n";
const db: UserDb = { passwd: PASSWD, group: GROUP };

const ctxOf = (id: string, userDb: UserDb = db): SpecContext => ({
  namespace: "ns",
  id,
  userDb: () => Promise.resolve(userDb),
});

async function golden(name: string): Promise<Spec> {
  return decodeSpec(await Deno.readFile(new URL(`./testdata/${name}`, import.meta.url)));
}

/** What the fixture image's config holds (tests/fixtures/images.ts). */
const fixtureConfig = {
  Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
  Cmd: ["/bin/sh"],
  WorkingDir: "/",
};
const fixtureDb: UserDb = {
  passwd: "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
  group: "root:x:0:\nnogroup:x:65534:\n",
};

Deno.test("generateSpec() with ctr's create options equals the spec Debian's ctr 1.6 sent for the same image", async () => {
  const want = await golden("ctr_plain.json");
  const ns = want.linux!.cgroupsPath!.split("/")[1]!;
  const got = await generateSpec({ namespace: ns, id: "s1", userDb: () => Promise.resolve(fixtureDb) }, [
    withDefaultUnixDevices,
    withImageConfig(fixtureConfig),
    withAnnotations({}),
  ]);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(encodeSpec(got))), want);
});

Deno.test("generateSpec() with env, mount, limits, host network, read-only and cwd equals ctr 1.6's run spec", async () => {
  const want = await golden("ctr_full.json");
  const ns = want.linux!.cgroupsPath!.split("/")[1]!;
  const hostname = want.process!.env!.find((e) => e.startsWith("HOSTNAME="))!.slice("HOSTNAME=".length);
  const got = await generateSpec({ namespace: ns, id: "s2", userDb: () => Promise.resolve(fixtureDb) }, [
    withDefaultUnixDevices,
    withEnv(["A=1", "PATH=/x"]),
    withMounts([parseMountFlag("type=bind,src=/tmp,dst=/host,options=rbind:ro")]),
    withImageConfig(fixtureConfig),
    withReadonlyRootfs,
    withArgs("/bin/sh", "-c", "true"),
    withProcessCwd("/tmp"),
    withHostNetwork(hostname),
    withCPUs(0.5),
    withCPUShares(512),
    withMemoryLimit(33554432),
    withAnnotations({ k: "v" }),
  ]);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(encodeSpec(got))), want);
});

Deno.test("encodeSpec() writes runtime-spec's top-level key order and omits unset fields", async () => {
  const spec = await generateSpec(ctxOf("c"), [withHostname("h")]);
  const keys = Object.keys(JSON.parse(new TextDecoder().decode(encodeSpec(spec))));
  assert.deepEqual(keys, ["ociVersion", "process", "root", "hostname", "mounts", "linux"]);
  const withImage = await generateSpec(ctxOf("c"), [
    withImageConfig({ Cmd: ["x"] }),
    withCPUs(1),
    withCPUShares(2),
  ]);
  const json = JSON.parse(new TextDecoder().decode(encodeSpec(withImage)));
  assert.deepEqual(Object.keys(json.process).slice(0, 4), ["user", "args", "env", "cwd"]);
  assert.deepEqual(Object.keys(json.linux.resources.cpu), ["shares", "quota", "period"]);
  assert.equal(spec.linux?.cgroupsPath, "/ns/c");
  assert.equal(spec.process?.terminal, undefined);
});

Deno.test("mergeEnv() replaces a key in place, appends new keys and removes a bare key", () => {
  assert.deepEqual(mergeEnv(["PATH=/bin", "A=1", "B=2"], ["A=3", "C=4", "B"]), ["PATH=/bin", "A=3", "C=4"]);
});

Deno.test("withEnvFile() takes one variable per line and lets later flags win", async () => {
  const spec = await generateSpec(ctxOf("c"), [withEnvFile("X=1\nY=2\n"), withEnv(["Y=3"])]);
  assert.deepEqual(spec.process?.env, ["X=1", "Y=3"]);
});

Deno.test("withImageConfig() joins Entrypoint and Cmd, lets args replace Cmd, and defaults PATH and cwd", async () => {
  const cfg = { Entrypoint: ["/entry"], Cmd: ["a"], Env: [] };
  const spec = await generateSpec(ctxOf("c"), [withImageConfig(cfg)]);
  assert.deepEqual(spec.process?.args, ["/entry", "a"]);
  assert.deepEqual(spec.process?.env, ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
  assert.equal(spec.process?.cwd, "/");
  const over = await generateSpec(ctxOf("c"), [withImageConfig(cfg, ["b", "c"])]);
  assert.deepEqual(over.process?.args, ["/entry", "b", "c"]);
});

Deno.test("withImageConfig() resolves the image's USER by name and adds the groups listing it", async () => {
  const spec = await generateSpec(ctxOf("c"), [
    withImageConfig({ User: "app", Cmd: ["x"], WorkingDir: "/w" }),
  ]);
  assert.deepEqual(spec.process?.user, { uid: 1000, gid: 1001, additionalGids: [1001, 10, 999] });
  assert.equal(spec.process?.cwd, "/w");
  const root = await generateSpec(ctxOf("c"), [withImageConfig({ Cmd: ["x"] })]);
  // root is listed in wheel.
  assert.deepEqual(root.process?.user, { uid: 0, gid: 0, additionalGids: [0, 10] });
});

Deno.test("withUser() resolves name, uid, uid:gid, name:group and uid:group like containerd", async () => {
  const user = async (u: string, d: UserDb = db) =>
    (await generateSpec(ctxOf("c", d), [withUser(u)])).process?.user;
  assert.deepEqual(await user("nobody"), { uid: 65534, gid: 65534, additionalGids: [65534] });
  assert.deepEqual(await user("1000"), { uid: 1000, gid: 1001, additionalGids: [1001] });
  // An unknown uid runs with gid 0, as containerd's WithUserID.
  assert.deepEqual(await user("4242"), { uid: 4242, gid: 0, additionalGids: [0] });
  assert.deepEqual(await user("4242", {}), { uid: 4242, gid: 0, additionalGids: [0] });
  assert.deepEqual(await user("5:6"), { uid: 5, gid: 6, additionalGids: [6] });
  // With a group part, a user name gives only the uid.
  assert.deepEqual(await user("app:nogroup"), { uid: 1000, gid: 65534, additionalGids: [65534] });
  assert.deepEqual(await user("7:wheel"), { uid: 7, gid: 10, additionalGids: [10] });
});

Deno.test("withUser() rejects an unknown name, an unknown group, a rootfs without passwd and a bad form", async () => {
  const fails = (u: string, d: UserDb, re: RegExp) =>
    assert.rejects(() => generateSpec(ctxOf("c", d), [withUser(u)]), re);
  await fails("ghost", db, /Cannot resolve user "ghost": no such user/);
  await fails("app:ghosts", db, /Cannot resolve group "ghosts": no such group/);
  await fails("app", {}, /rootfs has no \/etc\/passwd/);
  await fails("a:b:c", db, /Invalid USER value "a:b:c"/);
});

Deno.test("withAdditionalGids() after withUser() gives ctr 2's --user groups", async () => {
  const spec = await generateSpec(ctxOf("c"), [withUser("app"), withAdditionalGids("app")]);
  assert.deepEqual(spec.process?.user, { uid: 1000, gid: 1001, additionalGids: [1001, 10, 999] });
  const byUid = await generateSpec(ctxOf("c"), [withUser("1000"), withAdditionalGids("1000")]);
  assert.deepEqual(byUid.process?.user.additionalGids, [1001, 10, 999]);
});

Deno.test("the user database is loaded once however many options need it", async () => {
  let loads = 0;
  const ctx: SpecContext = {
    namespace: "ns",
    id: "c",
    userDb: () => {
      loads++;
      return Promise.resolve(db);
    },
  };
  await generateSpec(ctx, [
    withImageConfig({ User: "app" }),
    withUser("nobody"),
    withAdditionalGids("nobody"),
  ]);
  assert.equal(loads, 1);
  await generateSpec(ctx, [withArgs("true")]);
  assert.equal(loads, 1, "no option needed users: nothing was loaded");
});

Deno.test("withTTY() sets terminal and appends TERM=xterm", async () => {
  const spec = await generateSpec(ctxOf("c"), [withEnv(["A=1"]), withTTY]);
  assert.equal(spec.process?.terminal, true);
  assert.deepEqual(spec.process?.env, ["A=1", "TERM=xterm"]);
});

Deno.test("resource options set memory limit, CFS quota over a 100 ms period, shares and pids", async () => {
  const spec = await generateSpec(ctxOf("c"), [
    withMemoryLimit(64 << 20),
    withCPUs(1.5),
    withCPUShares(256),
    withPidsLimit(20),
  ]);
  const r = spec.linux?.resources;
  assert.deepEqual(r?.memory, { limit: 64 << 20 });
  assert.deepEqual(r?.cpu, { quota: 150000, period: 100000, shares: 256 });
  assert.deepEqual(r?.pids, { limit: 20 });
  assert.equal((await generateSpec(ctxOf("c"), [withCPUs(0.333333)])).linux?.resources?.cpu?.quota, 33333);
});

Deno.test("withHostNetwork() drops only the network namespace and binds hosts and resolv.conf read-only", async () => {
  const spec = await generateSpec(ctxOf("c"), [withHostNetwork("box")]);
  assert.deepEqual(spec.linux?.namespaces?.map((n) => n.type), ["pid", "ipc", "uts", "mount"]);
  assert.deepEqual(spec.mounts?.slice(-2), [
    { destination: "/etc/hosts", type: "bind", source: "/etc/hosts", options: ["rbind", "ro"] },
    { destination: "/etc/resolv.conf", type: "bind", source: "/etc/resolv.conf", options: ["rbind", "ro"] },
  ]);
  assert.deepEqual(spec.process?.env, ["HOSTNAME=box"]);
});

Deno.test("parseMountFlag() reads ctr's --mount syntax and rejects unknown keys", () => {
  assert.deepEqual(parseMountFlag("type=bind,source=/a,destination=/b,options=rbind:rw"), {
    destination: "/b",
    type: "bind",
    source: "/a",
    options: ["rbind", "rw"],
  });
  assert.deepEqual(parseMountFlag('type=bind,"src=/a,b",dst=/c'), {
    destination: "/c",
    type: "bind",
    source: "/a,b",
  });
  assert.throws(() => parseMountFlag("type=bind,from=/a"), /option "from" is not supported/);
  assert.throws(() => parseMountFlag("bind"), /expected key=val/);
  assert.deepEqual(bindMount("/a", "/b", { readonly: true }).options, ["rbind", "ro"]);
});

Deno.test("withReadonlyRootfs() and withHostname() set root.readonly and hostname", async () => {
  const spec = await generateSpec(ctxOf("c"), [withReadonlyRootfs, withHostname("box")]);
  assert.deepEqual(spec.root, { path: "rootfs", readonly: true });
  assert.equal(spec.hostname, "box");
});
