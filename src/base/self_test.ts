import assert from "node:assert/strict";
import { DENO_RUN_FLAGS, selfCommand } from "./self.ts";

Deno.test("selfCommand() runs this checkout's main.ts in the given role when not compiled", () => {
  const cmd = selfCommand("shim", ["-A"]);
  assert.equal(cmd[0], Deno.execPath());
  assert.deepEqual(cmd.slice(1, -2), ["run", ...DENO_RUN_FLAGS, "-A"]);
  const main = cmd.at(-2)!;
  assert.ok(Deno.statSync(main).isFile, `${main} exists`);
  assert.ok(main.endsWith("/main.ts") && !main.includes("/src/"), main);
  assert.equal(cmd.at(-1), "shim");
});

Deno.test("DENO_RUN_FLAGS make deno load a dynamic import when it runs, not before the first line", async () => {
  // The flag is unstable in deno: if a release drops or renames it, this says so. What tells the two
  // loads apart without timing them: a module deno loaded ahead (part of the graph) needs no read
  // permission, one loaded when the import() runs does.
  const dir = await Deno.makeTempDir({ prefix: "berth-self-" });
  try {
    await Deno.writeTextFile(`${dir}/late.js`, "export const v = 1;\n");
    await Deno.writeTextFile(`${dir}/main.js`, 'const { v } = await import("./late.js");\nconsole.log(v);\n');
    const run = (flags: readonly string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--quiet", "--no-config", ...flags, `${dir}/main.js`],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const ahead = await run([]);
    assert.ok(ahead.success, new TextDecoder().decode(ahead.stderr));
    const lazy = await run(DENO_RUN_FLAGS);
    assert.equal(lazy.success, false, "late.js was loaded before main.js ran");
    assert.match(new TextDecoder().decode(lazy.stderr), /Requires read access to "[^"]*late\.js"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
