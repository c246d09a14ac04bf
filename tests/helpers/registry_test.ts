import assert from "node:assert/strict";
import { startRegistry } from "./registry.ts";

Deno.test("startRegistry() serves /v2/ on loopback and stop() removes process and temp dir", async () => {
  const registry = await startRegistry();
  let stopped = false;
  try {
    assert.match(registry.host, /^127\.0\.0\.1:\d+$/);
    const res = await fetch(`${registry.url}/v2/`);
    await res.body?.cancel();
    assert.equal(res.status, 200);
    const dir = registry.logPath.replace(/\/registry\.log$/, "");
    assert.ok((await Deno.stat(dir)).isDirectory);
    await registry.stop();
    stopped = true;
    await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
    await assert.rejects(fetch(`${registry.url}/v2/`));
  } finally {
    if (!stopped) await registry.stop();
  }
});

Deno.test("startRegistry({ auth }) challenges anonymous requests and accepts the credentials", async () => {
  await using registry = await startRegistry({ auth: { username: "u", password: "p w" } });
  const anon = await fetch(`${registry.url}/v2/`);
  await anon.body?.cancel();
  assert.equal(anon.status, 401);
  assert.match(anon.headers.get("www-authenticate") ?? "", /^Basic /);
  const ok = await fetch(`${registry.url}/v2/`, { headers: { authorization: `Basic ${btoa("u:p w")}` } });
  await ok.body?.cancel();
  assert.equal(ok.status, 200);
  const wrong = await fetch(`${registry.url}/v2/`, { headers: { authorization: `Basic ${btoa("u:nope")}` } });
  await wrong.body?.cancel();
  assert.equal(wrong.status, 401);
});
