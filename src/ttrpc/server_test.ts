import assert from "node:assert/strict";
import { TtrpcServer } from "./mod.ts";

Deno.test("TtrpcServer forgets a connection once it ends, so a long-lived daemon does not grow per shim", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-ttrpc-" });
  const server = new TtrpcServer();
  try {
    server.listen(`${dir}/s.sock`);
    assert.equal(server.serving, 1, "the accept loop");
    for (let i = 0; i < 50; i++) {
      const conn = await Deno.connect({ transport: "unix", path: `${dir}/s.sock` });
      conn.close();
    }
    // Each shim dials the daemon's events socket once per start: 50 ended connections leave nothing.
    const deadline = Date.now() + 5_000;
    while (server.serving > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(server.serving, 1, "connections that ended are still held");
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TtrpcServer.close() removes its socket before it stops listening, so a successor's file stays", async () => {
  const dir = await Deno.makeTempDir({ prefix: "berth-ttrpc-" });
  const path = `${dir}/s.sock`;
  const old = new TtrpcServer();
  const successor = new TtrpcServer();
  try {
    old.listen(path);
    const conn = await Deno.connect({ transport: "unix", path });
    const closing = old.close({ graceMs: 200 });
    assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
    // A shim that found nothing listening binds the same path while the old one still winds down.
    successor.listen(path);
    await closing;
    conn.close();
    const again = await Deno.connect({ transport: "unix", path });
    again.close();
  } finally {
    await successor.close();
    await Deno.remove(dir, { recursive: true });
  }
});
