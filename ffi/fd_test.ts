import assert from "node:assert/strict";
import * as net from "node:net";
import { fdSyscalls } from "./fd.ts";

function inheritable(): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc/self/fdinfo")) {
    const fd = Number(e.name);
    if (fd <= 2) continue;
    try {
      const m = /^flags:\s*([0-7]+)/m.exec(Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`));
      if (m && (parseInt(m[1]!, 8) & 0o2000000) === 0) out.push(fd);
    } catch { /* closed meanwhile */ }
  }
  return out;
}

Deno.test("closeOnExecAll() marks a node-compat listener close-on-exec so children do not inherit it", async () => {
  const dir = await Deno.makeTempDir();
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(`${dir}/s.sock`, resolve));
  try {
    fdSyscalls().closeOnExecAll();
    assert.deepEqual(inheritable(), []);
    // A child sees only its three standard descriptors (and what it opens itself to list them).
    const out = await new Deno.Command("sh", { args: ["-c", "ls /proc/$$/fd"], stdout: "piped" }).output();
    const fds = new TextDecoder().decode(out.stdout).trim().split(/\s+/).map(Number);
    assert.ok(fds.every((fd) => fd <= 3), `child inherited ${fds}`);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await Deno.remove(dir, { recursive: true });
  }
});
