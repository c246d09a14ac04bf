import assert from "node:assert/strict";
import { deadline } from "./timers.ts";

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

Deno.test("deadline() aborts with a TimeoutError, not once cleared, and follows the signal it joins", async () => {
  const late = deadline(20);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal((late.signal.reason as Error).name, "TimeoutError");
  const cleared = deadline(20);
  cleared.clear();
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(cleared.signal.aborted, false);
  const outer = new AbortController();
  const joined = deadline(60_000, outer.signal);
  outer.abort(new Error("caller went"));
  assert.equal((joined.signal.reason as Error).message, "caller went");
  joined.clear();
});
