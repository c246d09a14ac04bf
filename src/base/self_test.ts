import assert from "node:assert/strict";
import { selfCommand } from "./self.ts";

Deno.test("selfCommand() runs this checkout's main.ts in the given role when not compiled", () => {
  const cmd = selfCommand("shim", ["-A"]);
  assert.equal(cmd[0], Deno.execPath());
  assert.deepEqual(cmd.slice(1, 3), ["run", "-A"]);
  assert.ok(Deno.statSync(cmd[3]!).isFile, `${cmd[3]} exists`);
  assert.ok(cmd[3]!.endsWith("/main.ts") && !cmd[3]!.includes("/src/"), cmd[3]!);
  assert.equal(cmd[4], "shim");
});
