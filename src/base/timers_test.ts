import assert from "node:assert/strict";

Deno.test("skipEmptyClearTimeout() keeps clearTimeout clearing real timers, and ignores none", async () => {
  const script = `
    import { skipEmptyClearTimeout } from ${JSON.stringify(new URL("./timers.ts", import.meta.url).href)};
    skipEmptyClearTimeout();
    clearTimeout(undefined);
    clearTimeout(null);
    let fired = false;
    const t = setTimeout(() => { fired = true; }, 20);
    clearTimeout(t);
    await new Promise((r) => setTimeout(r, 60));
    console.log(fired ? "fired" : "cleared");
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "cleared", new TextDecoder().decode(out.stderr));
});
