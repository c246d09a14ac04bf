import assert from "node:assert/strict";
import * as net from "node:net";
import { outputClean } from "./spawn.ts";

/** The socket inodes among a command's open descriptors, as `ls -l /proc/self/fd` inside it shows. */
async function childSockets(run: (program: string, o: Deno.CommandOptions) => Promise<Deno.CommandOutput>) {
  const out = await run("sh", { args: ["-c", "ls -l /proc/$$/fd"], stdout: "piped", stderr: "piped" });
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.includes("socket:"));
}

Deno.test({
  name: "outputClean() passes no accepted node-compat connection on to the child, Deno.Command does",
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/s.sock`;
    const accepted: net.Socket[] = [];
    const server = net.createServer((s) => accepted.push(s));
    await new Promise<void>((r) => server.listen(path, r));
    const client = net.connect(path);
    try {
      await new Promise<void>((r) => client.once("connect", () => r()));
      while (accepted.length === 0) await new Promise((r) => setTimeout(r, 5));
      const plain = await childSockets((p, o) => new Deno.Command(p, o).output());
      // Without the helper the child holds the accepted connection (this is what the fix is for).
      assert.ok(plain.length > 0, "node-compat sockets are expected to lack FD_CLOEXEC");
      assert.deepEqual(await childSockets(outputClean), []);
    } finally {
      client.destroy();
      for (const s of accepted) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
