import assert from "node:assert/strict";
import { ctr, startDaemon } from "./helpers/daemon.ts";

async function ingest(address: string, ref: string, text: string): Promise<string> {
  const child = new Deno.Command("ctr", {
    args: ["--address", address, "content", "ingest", ref],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await child.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const bytes = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return "sha256:" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("A sync lease delete collects unreferenced content and keeps content labelled gc.root", async () => {
  // The helper's default config turns the start-up collection off: it would race the ingests.
  await using d = await startDaemon();
  const loose = await ingest(d.address, "loose", "nobody refers to me");
  const kept = await ingest(d.address, "kept", "a root");
  const label = await ctr(d.address, [
    "content",
    "label",
    kept,
    "containerd.io/gc.root=2026-11-27T00:00:00Z",
  ]);
  assert.equal(label.code, 0, label.stderr);
  assert.ok((await ctr(d.address, ["content", "ls", "-q"])).stdout.includes(loose));

  assert.equal((await ctr(d.address, ["leases", "create", "--id", "trigger"])).code, 0);
  const rm = await ctr(d.address, ["leases", "rm", "--sync", "trigger"]);
  assert.equal(rm.code, 0, rm.stderr);

  const ls = (await ctr(d.address, ["content", "ls", "-q"])).stdout;
  assert.ok(!ls.includes(loose), `collected:\n${ls}`);
  assert.ok(ls.includes(kept), `kept:\n${ls}`);
  assert.equal(
    await Deno.stat(`${d.root}/io.containerd.content.v1.content/blobs/sha256/${loose.slice(7)}`).then(
      () => true,
      () => false,
    ),
    false,
  );
});
