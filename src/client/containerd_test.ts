import assert from "node:assert/strict";
import { BerthClient } from "./mod.ts";

const CONTAINERD = "/usr/bin/containerd";

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function mountsUnder(dir: string): string[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m.startsWith(dir))
    .sort((a, b) => b.length - a.length);
}

Deno.test({
  name: "BerthClient talks to a real containerd: Version and Namespaces.List",
  ignore: !exists(CONTAINERD),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "berth-client-containerd-" });
    const socket = `${dir}/containerd.sock`;
    // Every path containerd writes moves into the temp dir; CRI (which would touch host networking) is off.
    await Deno.writeTextFile(
      `${dir}/config.toml`,
      [
        "version = 2",
        `root = "${dir}/root"`,
        `state = "${dir}/state"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        "[grpc]",
        `  address = "${socket}"`,
        "[ttrpc]",
        `  address = "${socket}.ttrpc"`,
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${dir}/opt"`,
        "",
      ].join("\n"),
    );
    const daemon = new Deno.Command(CONTAINERD, {
      args: ["--config", `${dir}/config.toml`],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const log: Uint8Array[] = [];
    const logDone = daemon.stderr.pipeTo(new WritableStream({ write: (c) => void log.push(c) })).catch(
      () => {},
    );
    const client = new BerthClient(socket, { namespace: "berth-client-test", timeoutMs: 5000 });
    try {
      let version;
      for (let i = 0; i < 100 && !version; i++) {
        version = await client.version.version({}).catch(() => undefined);
        if (!version) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(version, `containerd did not answer: ${new TextDecoder().decode(log.at(-1))}`);
      assert.match(version.version, /^1\.|^v?\d/);
      await client.namespaces.create({ namespace: { name: "berth-client-test", labels: { a: "b" } } });
      const list = await client.namespaces.list({});
      const ns = list.namespaces.find((n) => n.name === "berth-client-test");
      assert.ok(ns, `namespaces: ${list.namespaces.map((n) => n.name).join(", ")}`);
      assert.equal(ns.labels.a, "b");
      // An error from containerd arrives as a ConnectError with containerd's code.
      const err = await client.containers.get({ id: "no-such-container" }).then(() => undefined, (e) => e);
      assert.equal(err?.code, 5 /* NotFound */);
    } finally {
      client.close();
      try {
        daemon.kill("SIGTERM");
      } catch { /* exited */ }
      const timer = setTimeout(() => {
        try {
          daemon.kill("SIGKILL");
        } catch { /* exited */ }
      }, 5000);
      await daemon.status;
      clearTimeout(timer);
      await logDone;
      for (const m of mountsUnder(dir)) {
        await new Deno.Command("umount", { args: ["-l", m], stdout: "null", stderr: "null" }).output();
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});
