import assert from "node:assert/strict";
import { execPlugin, findPlugin, type PluginEnv, PluginError } from "./exec.ts";
import { FakePlugins } from "./testdata/fake_plugins.ts";

const env = (path: string[]): PluginEnv => ({
  command: "ADD",
  containerId: "c1",
  netns: "/run/netns/x",
  ifname: "eth0",
  args: "IgnoreUnknown=1;K8S_POD_NAME=p",
  path,
});

async function withFakes(fn: (f: FakePlugins) => Promise<void>) {
  const f = await FakePlugins.create();
  try {
    await fn(f);
  } finally {
    await f.cleanup();
  }
}

async function rejects(p: Promise<unknown>, check: (err: PluginError) => void) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof PluginError, String(err));
    check(err);
    return true;
  });
}

Deno.test("execPlugin() passes the CNI_* parameters in the environment and the request on stdin", async () => {
  await withFakes(async (f) => {
    await f.add("p", { ADD: { stdout: '{"cniVersion":"1.0.0"}' } });
    const out = await execPlugin(`${f.binDir}/p`, {
      env: env([f.binDir, "/other"]),
      stdin: '{"a":1}',
      what: { plugin: "p" },
    });
    assert.equal(out.stdout, '{"cniVersion":"1.0.0"}');
    const [call] = await f.calls();
    assert.deepEqual(call!.stdin, { a: 1 });
    assert.equal(call!.env.CNI_COMMAND, "ADD");
    assert.equal(call!.env.CNI_CONTAINERID, "c1");
    assert.equal(call!.env.CNI_NETNS, "/run/netns/x");
    assert.equal(call!.env.CNI_IFNAME, "eth0");
    assert.equal(call!.env.CNI_ARGS, "IgnoreUnknown=1;K8S_POD_NAME=p");
    assert.equal(call!.env.CNI_PATH, `${f.binDir}:/other`);
  });
});

Deno.test("execPlugin() reports a plugin's error object with the plugin, network, command and code", async () => {
  await withFakes(async (f) => {
    await f.add("bridge", {
      ADD: { stdout: '{"cniVersion":"1.0.0","code":11,"msg":"busy","details":"try later"}', exit: 1 },
    });
    await rejects(
      execPlugin(`${f.binDir}/bridge`, {
        env: env([f.binDir]),
        stdin: "{}",
        what: { plugin: "bridge", network: "n" },
      }),
      (err) => {
        assert.equal(
          err.message,
          'CNI plugin bridge of network "n" failed ADD for container "c1": busy: try later (CNI error 11)',
        );
        assert.equal(err.code, 11);
        assert.equal(err.kind, "unavailable");
      },
    );
  });
});

Deno.test("execPlugin() falls back to stderr, then to the exit status, when there is no error object", async () => {
  await withFakes(async (f) => {
    await f.add("a", { ADD: { stderr: "line one\nno such device", exit: 2 } });
    await f.add("b", { ADD: { exit: 3 } });
    await f.add("c", { ADD: { stdout: "panic: oh no", exit: 1 } });
    const what = (plugin: string) => ({ env: env([f.binDir]), stdin: "{}", what: { plugin } });
    await rejects(execPlugin(`${f.binDir}/a`, what("a")), (err) => {
      assert.match(err.message, /failed ADD for container "c1": exit status 2: line one; no such device$/);
      assert.equal(err.stderr, "line one\nno such device");
    });
    await rejects(
      execPlugin(`${f.binDir}/b`, what("b")),
      (err) => assert.match(err.message, /exit status 3 with no error message$/),
    );
    await rejects(
      execPlugin(`${f.binDir}/c`, what("c")),
      (err) =>
        assert.match(
          err.message,
          /exit status 1, and its error output is not a CNI error object: "panic: oh no"$/,
        ),
    );
  });
});

Deno.test("execPlugin() stops a plugin at its deadline and says so", async () => {
  await withFakes(async (f) => {
    await f.add("slow", { ADD: { sleep: 30 } });
    const started = Date.now();
    await rejects(
      execPlugin(`${f.binDir}/slow`, { env: env([f.binDir]), stdin: "{}", what: { plugin: "slow" } }, {
        timeoutMs: 300,
      }),
      (err) => {
        assert.equal(err.kind, "deadline_exceeded");
        assert.match(err.message, /did not finish within 300 ms; it was stopped/);
      },
    );
    assert.ok(Date.now() - started < 5000);
  });
});

Deno.test("execPlugin() stops a plugin when the caller's signal aborts", async () => {
  await withFakes(async (f) => {
    await f.add("slow", { ADD: { sleep: 30 } });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    await rejects(
      execPlugin(`${f.binDir}/slow`, { env: env([f.binDir]), stdin: "{}", what: { plugin: "slow" } }, {
        signal: ac.signal,
      }),
      (err) => assert.equal(err.kind, "canceled"),
    );
  });
});

Deno.test("execPlugin() kills a plugin whose output exceeds the cap", async () => {
  await withFakes(async (f) => {
    await f.add("loud", { ADD: { flood: 4_000_000 } });
    await rejects(
      execPlugin(`${f.binDir}/loud`, { env: env([f.binDir]), stdin: "{}", what: { plugin: "loud" } }, {
        maxOutputBytes: 65536,
      }),
      (err) => assert.match(err.message, /its output exceeds 65536 bytes; it was stopped/),
    );
  });
});

Deno.test("findPlugin() searches the folders in order and refuses path-like names", async () => {
  await withFakes(async (f) => {
    const second = await Deno.makeTempDir({ prefix: "berth-cni-bin2-" });
    try {
      await Deno.writeTextFile(`${second}/both`, "#!/bin/sh\n", { mode: 0o755 });
      await Deno.writeTextFile(`${second}/only2`, "#!/bin/sh\n", { mode: 0o755 });
      await f.add("both", {});
      await Deno.mkdir(`${f.binDir}/adir`);
      assert.equal(await findPlugin("both", [f.binDir, second]), `${f.binDir}/both`);
      assert.equal(await findPlugin("only2", ["/nonexistent", f.binDir, second]), `${second}/only2`);
      assert.equal(await findPlugin("adir", [f.binDir]), undefined);
      assert.equal(await findPlugin("../bin/both", [f.binDir]), undefined);
    } finally {
      await Deno.remove(second, { recursive: true });
    }
  });
});
